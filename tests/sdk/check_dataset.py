"""Reads an exported dataset archive back with the tools that consume it and
prints what they saw as one JSON object.

    check_dataset.py coco ARCHIVE.zip
    check_dataset.py yolo ARCHIVE.zip detect|segment

COCO: pycocotools loads every split's instances file; every image exists at
its recorded size; every box lies inside its image; the ground truth scored
as detections by COCOeval gives AP 1.0 (bbox, and segm when polygons are
there); each polygon's rasterised mask is within 3 % of the recorded area.

YOLO: Ultralytics' own dataset check reads data.yaml, and its YOLODataset
loads every split's labels without logging a warning; one item goes through
the loader. Offline, Ultralytics is kept from the network by YOLO_OFFLINE and
by a settings folder (YOLO_CONFIG_DIR) that already holds the fonts it would
fetch; nothing here plots, so no other download is attempted.
"""

import contextlib
import io
import json
import logging
import os
import sys
import tempfile
import zipfile


def coco(root):
    import numpy as np
    from PIL import Image
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    out = {"splits": {}}
    for name in sorted(os.listdir(os.path.join(root, "annotations"))):
        split = name[len("instances_"):-len(".json")]
        with contextlib.redirect_stdout(io.StringIO()):
            gt = COCO(os.path.join(root, "annotations", name))
        images = gt.loadImgs(gt.getImgIds())
        for image in images:
            path = os.path.join(root, "images", image["file_name"])
            with Image.open(path) as im:
                assert im.size == (image["width"], image["height"]), (path, im.size)
        anns = gt.loadAnns(gt.getAnnIds())
        worst_area = 0.0
        for ann in anns:
            image = gt.imgs[ann["image_id"]]
            x, y, w, h = ann["bbox"]
            assert w > 0 and h > 0, ann
            assert x >= 0 and y >= 0 and x + w <= image["width"] and y + h <= image["height"], ann
            if ann["segmentation"]:
                mask = gt.annToMask(ann)
                worst_area = max(worst_area, abs(int(mask.sum()) - ann["area"]) / ann["area"])
        result = {
            "images": len(images),
            "annotations": len(anns),
            "categories": [c["name"] for c in gt.loadCats(gt.getCatIds())],
            "worst_area_error": worst_area,
        }
        if anns:
            dets = [dict(a, score=1.0) for a in anns]
            for kind in ["bbox", "segm"] if all(a["segmentation"] for a in anns) else ["bbox"]:
                with contextlib.redirect_stdout(io.StringIO()):
                    found = gt.loadRes([dict(d) for d in dets])
                    ev = COCOeval(gt, found, kind)
                    ev.evaluate()
                    ev.accumulate()
                    ev.summarize()
                result["ap_" + kind] = float(ev.stats[0])
        out["splits"][split] = result
    return out


class Warnings(logging.Handler):
    """Every warning Ultralytics logs while it reads the dataset."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def yolo(root, task):
    os.environ.setdefault("YOLO_OFFLINE", "1")
    from ultralytics.data.dataset import YOLODataset
    from ultralytics.data.utils import check_det_dataset

    warnings = Warnings()
    logging.getLogger("ultralytics").addHandler(warnings)

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        data = check_det_dataset(os.path.join(root, "data.yaml"))
    out = {"nc": data["nc"], "names": list(data["names"].values()), "splits": {}}
    for split in ["train", "val", "test"]:
        if not data.get(split):
            continue
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            ds = YOLODataset(img_path=data[split], data=data, task=task, imgsz=320, augment=False, cache=False)
            item = ds[0]
        boxes = sum(len(label["cls"]) for label in ds.labels)
        segments = sum(len(label["segments"]) for label in ds.labels)
        assert item["img"].shape[0] == 3, item["img"].shape
        for label in ds.labels:
            b = label["bboxes"]
            if len(b):
                assert (b >= 0).all() and (b <= 1).all(), label["im_file"]
        out["splits"][split] = {"images": len(ds), "boxes": int(boxes), "segments": int(segments)}
    assert not warnings.messages, warnings.messages
    out["warnings"] = len(warnings.messages)
    return out


def main():
    kind, archive = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory() as root:
        with zipfile.ZipFile(archive) as z:
            assert z.testzip() is None
            z.extractall(root)
        manifest = open(os.path.join(root, "MANIFEST.md"), encoding="utf-8").read()
        if kind == "coco":
            out = coco(root)
        else:
            out = yolo(root, sys.argv[3])
        out["manifest_lines"] = len(manifest.splitlines())
    print(json.dumps(out))


if __name__ == "__main__":
    main()
