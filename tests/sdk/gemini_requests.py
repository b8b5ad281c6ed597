"""Makes the requests the platform's Gemini client makes, through Google's own
Python SDK (google-genai), against the base URL given: the reference the client's
requests are compared with (tests/gemini.rs).

Usage: python gemini_requests.py PARAMS.json
PARAMS: base_url, api_key, model, video, mime_type, display_name, mode
("inline" or "file"), system, prompt, schema, temperature.
"""

import json
import sys
import time

from google import genai
from google.genai import types


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as f:
        p = json.load(f)
    client = genai.Client(
        api_key=p["api_key"],
        http_options=types.HttpOptions(base_url=p["base_url"], api_version="v1beta"),
    )
    uploaded = None
    if p["mode"] == "inline":
        with open(p["video"], "rb") as f:
            video = types.Part.from_bytes(data=f.read(), mime_type=p["mime_type"])
    else:
        uploaded = client.files.upload(
            file=p["video"],
            config={"mime_type": p["mime_type"], "display_name": p["display_name"]},
        )
        while uploaded.state.name == "PROCESSING":
            time.sleep(0.02)
            uploaded = client.files.get(name=uploaded.name)
        video = types.Part.from_uri(file_uri=uploaded.uri, mime_type=uploaded.mime_type)
    client.models.generate_content(
        model=p["model"],
        contents=[types.Content(role="user", parts=[video, types.Part.from_text(text=p["prompt"])])],
        config=types.GenerateContentConfig(
            system_instruction=p["system"],
            temperature=p["temperature"],
            response_mime_type="application/json",
            response_json_schema=p["schema"],
        ),
    )
    if uploaded is not None:
        client.files.delete(name=uploaded.name)


if __name__ == "__main__":
    main()
