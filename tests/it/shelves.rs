//! Real shelf photos end to end against real parts: a synthetic shelf made of
//! the directory's own frames, uploaded with its YOLO labels over the API,
//! every crop matched by a worker, reviewed (confirm, not in the directory,
//! skip), scored by coverage, taken into a recognition dataset version; and
//! the refusals of bad input, with nothing half imported.

use crate::common;

use std::{io::Cursor, time::Duration};

use buybuddy_worker::storage::Storage;
use common::*;
use image::{Rgb, RgbImage};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::datasets::{get, masked_products, post, worker_pool};

/// Where `masked_products` draws product `p` in its frame `f`.
fn product_box(p: usize, f: usize) -> (u32, u32, u32, u32) {
    (30 + f as u32 * 3, 20 + p as u32 * 2, 70, 110)
}

const SLOT: u32 = 170;
const TOP: u32 = 30;
const FRAME: usize = 2;

/// A shelf of frames pasted side by side on a brown background (frame 2 of
/// each product, then a magenta product the directory lacks), as a JPEG,
/// with the YOLO labels of the product boxes (classes: the barcodes, and
/// `unknown`).
pub(crate) async fn shelf(
    pool: &sqlx::PgPool,
    storage: &Storage,
    products: &[(Uuid, String)],
) -> (Vec<u8>, String, String) {
    let slots = products.len() as u32 + 1;
    let (w, h) = (20 + slots * SLOT, 220);
    let mut photo = RgbImage::from_pixel(w, h, Rgb([90, 70, 50]));
    let mut labels = String::new();
    let mut names = String::from("names:\n");
    let mut add_label = |class: usize, (x, y, bw, bh): (u32, u32, u32, u32)| {
        labels.push_str(&format!(
            "{class} {:.6} {:.6} {:.6} {:.6}\n",
            (f64::from(x) + f64::from(bw) / 2.0) / f64::from(w),
            (f64::from(y) + f64::from(bh) / 2.0) / f64::from(h),
            f64::from(bw) / f64::from(w),
            f64::from(bh) / f64::from(h)
        ));
    };
    for (i, (id, barcode)) in products.iter().enumerate() {
        let key: String = sqlx::query_scalar(
            "SELECT storage_key FROM frames WHERE product_id = $1 AND frame_index = $2",
        )
        .bind(id)
        .bind(FRAME as i32)
        .fetch_one(pool)
        .await
        .unwrap();
        let frame = image::load_from_memory(&storage.get(&key).await.unwrap())
            .unwrap()
            .to_rgb8();
        let (left, top) = (20 + i as u32 * SLOT, TOP);
        image::imageops::replace(&mut photo, &frame, i64::from(left), i64::from(top));
        let (x, y, bw, bh) = product_box(i, FRAME);
        add_label(i, (left + x, top + y, bw, bh));
        names.push_str(&format!("  {i}: \"{barcode}\"\n"));
    }
    // The product the directory lacks.
    let left = 20 + products.len() as u32 * SLOT;
    let mut stranger = RgbImage::from_pixel(160, 160, Rgb([128, 128, 128]));
    for y in 25..135 {
        for x in 45..115 {
            stranger.put_pixel(x, y, Rgb([230, 20, 230]));
        }
    }
    image::imageops::replace(&mut photo, &stranger, i64::from(left), i64::from(TOP));
    add_label(products.len(), (left + 45, TOP + 25, 70, 110));
    names.push_str(&format!("  {}: unknown\n", products.len()));
    let mut jpeg = Cursor::new(Vec::new());
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95)
        .encode_image(&photo)
        .unwrap();
    (jpeg.into_inner(), labels, names)
}

fn part(bytes: Vec<u8>, name: &str) -> reqwest::multipart::Part {
    reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned())
}

/// Files of an upload: their bytes and names.
type Files<'a> = Vec<(Vec<u8>, &'a str)>;

pub(crate) async fn upload(server: &TestServer, files: Files<'_>) -> (u16, Value) {
    let mut form = reqwest::multipart::Form::new().text("store", "Migros Kadikoy");
    for (bytes, name) in files {
        form = form.part("files", part(bytes, name));
    }
    let response = server
        .client
        .post(server.url("/api/shelves"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

pub(crate) async fn wait_job(pool: &sqlx::PgPool, job: &str) {
    let id: Uuid = job.parse().unwrap();
    wait_for_status(pool, id, "completed", Duration::from_secs(120)).await;
}

async fn objects_under(storage_dir: &std::path::Path, prefix: &str) -> usize {
    let root = storage_dir.join(prefix);
    if !root.exists() {
        return 0;
    }
    walk(&root)
}

fn walk(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            if path.is_dir() { walk(&path) } else { 1 }
        })
        .sum()
}

#[tokio::test]
async fn a_labelled_shelf_is_matched_reviewed_scored_and_trained_on() {
    let db = TestDb::new().await;
    let pipeline = TestPipeline::new().await;
    pipeline.resources.register_models(&db.pool).await.unwrap();
    let products = masked_products(&db.pool, &pipeline.storage, 5, 5).await;
    let server = TestServer::start_with(&db.pool, pipeline.storage.clone()).await;
    let worker = InProcessWorker::start(
        &worker_pool(&db).await,
        buybuddy::queue::worker::WorkerConfig {
            kinds: vec!["embed", "match_shelf", "augment", "export"],
            ..pipeline.worker_config()
        },
    );

    // Pages answer on an empty database.
    for path in ["/shelves", "/shelves/review", "/coverage"] {
        let page = server.client.get(server.url(path)).send().await.unwrap();
        assert_eq!(page.status(), 200, "{path}");
    }
    // Matching needs the products' vectors first.
    buybuddy::actions::search::backfill(&db.pool, buybuddy::queue::DEFAULT_QUEUE, None)
        .await
        .unwrap();
    eventually(
        Duration::from_secs(120),
        "the products' vectors",
        || async {
            let n: i64 = sqlx::query_scalar("SELECT count(*) FROM product_embeddings")
                .fetch_one(&db.pool)
                .await
                .unwrap();
            (n == products.len() as i64).then_some(())
        },
    )
    .await;

    let (photo, labels, names) = shelf(&db.pool, &pipeline.storage, &products).await;
    let (status, report) = upload(
        &server,
        vec![
            (photo.clone(), "aisle-3.jpg"),
            (labels.into_bytes(), "aisle-3.txt"),
            (names.into_bytes(), "data.yaml"),
        ],
    )
    .await;
    assert_eq!(status, 201, "{report}");
    assert_eq!(report["boxes"], 6, "{report}");
    let image_id = report["images"][0][0].as_i64().unwrap();
    let shown = get(&server, &format!("/api/shelves/{image_id}")).await;
    assert_eq!(shown["image"]["store"], "Migros Kadikoy");
    let boxes = shown["boxes"].as_array().unwrap().clone();
    assert_eq!(boxes.len(), 6);
    for (i, b) in boxes.iter().enumerate() {
        assert_eq!(b["source"], "imported");
        assert_eq!(b["status"], "new");
        let expected = products.get(i).map_or("unknown", |p| p.1.as_str());
        assert_eq!(b["label"], expected);
        let (x, _, bw, bh) = product_box(i.min(4), FRAME);
        if i < products.len() {
            assert_eq!(b["x"], 20 + i as u32 * SLOT + x, "{b}");
            assert_eq!(
                (b["width"].as_u64(), b["height"].as_u64()),
                (Some(u64::from(bw)), Some(u64::from(bh)))
            );
        }
    }
    // The same photo again is refused, and nothing is added.
    let (status, again) = upload(&server, vec![(photo, "copy.jpg")]).await;
    assert_eq!(status, 422, "{again}");
    assert!(
        again
            .to_string()
            .contains("uploaded before, as shelf photo"),
        "{again}"
    );

    // Matching: every crop gets the nearest products; each known product's
    // crop has its own product on top.
    let (status, matched) = post(&server, "/api/shelves/match", json!({})).await;
    assert_eq!(status, 202, "{matched}");
    wait_job(&db.pool, matched["job_id"].as_str().unwrap()).await;
    let (status, nothing) = post(&server, "/api/shelves/match", json!({})).await;
    assert_eq!(status, 409, "matching twice has nothing to do: {nothing}");
    let mut top_right = 0;
    for (i, b) in boxes.iter().enumerate() {
        let item = get(&server, &format!("/api/shelves/boxes/{}", b["id"])).await;
        assert_eq!(item["box"]["status"], "suggested");
        let suggestions = item["suggestions"].as_array().unwrap();
        assert_eq!(suggestions.len(), products.len(), "{item}");
        let sims: Vec<f64> = suggestions
            .iter()
            .map(|s| s["similarity"].as_f64().unwrap())
            .collect();
        assert!(
            sims.windows(2).all(|w| w[0] >= w[1]),
            "best first: {sims:?}"
        );
        assert!(suggestions[0]["frame"]["storage_key"].is_string(), "{item}");
        if i < products.len() && suggestions[0]["product"]["barcode"] == products[i].1 {
            top_right += 1;
        }
    }
    assert_eq!(
        top_right,
        products.len(),
        "the classic descriptor finds each product's own crop"
    );

    // Review: skip the first crop, confirm the rest by their labels, and the
    // stranger is not in the directory.
    let next = get(&server, "/api/shelves/review").await;
    assert_eq!(next["counts"]["left"], 6);
    let first = next["next"]["box"]["id"].as_i64().unwrap();
    assert_eq!(first, boxes[0]["id"].as_i64().unwrap());
    let (status, _) = post(
        &server,
        &format!("/api/shelves/boxes/{first}/review"),
        json!({"action": "skip"}),
    )
    .await;
    assert_eq!(status, 200);
    let next = get(&server, "/api/shelves/review").await;
    assert_eq!(
        next["next"]["box"]["id"], boxes[1]["id"],
        "a skipped crop goes last"
    );
    let (status, refused) = post(
        &server,
        &format!("/api/shelves/boxes/{first}/review"),
        json!({"action": "confirm", "product": "0000000000000"}),
    )
    .await;
    assert_eq!(status, 422, "{refused}");
    for (i, b) in boxes.iter().enumerate() {
        let id = b["id"].as_i64().unwrap();
        let body = match products.get(i) {
            // The first by id, the second by barcode.
            Some((product, _)) if i == 0 => json!({"action": "confirm", "product": product}),
            Some((_, barcode)) => json!({"action": "confirm", "product": barcode}),
            None => json!({"action": "absent"}),
        };
        let (status, decided) =
            post(&server, &format!("/api/shelves/boxes/{id}/review"), body).await;
        assert_eq!(status, 200, "{decided}");
        if i < products.len() {
            assert_eq!(decided["status"], "confirmed");
            assert_eq!(decided["took_top"], true, "{decided}");
            assert_eq!(decided["reviewed_by"], server.email.as_str());
        } else {
            assert_eq!(decided["status"], "absent");
        }
    }
    let done = get(&server, "/api/shelves/review").await;
    assert_eq!(done["next"], Value::Null);
    assert_eq!(
        done["counts"],
        json!({"left": 0, "confirmed": 5, "absent": 1})
    );

    // Coverage: one crop each, all found by their own frames.
    let coverage = get(&server, "/api/coverage").await;
    let rows = coverage["products"].as_array().unwrap();
    assert_eq!(rows.len(), products.len(), "{coverage}");
    for row in rows {
        assert_eq!(row["real_crops"], 1);
        assert_eq!(row["crops_scored"], 1);
        assert_eq!(row["recall_at_1"], 1.0, "{row}");
        assert!(row["mean_similarity"].as_f64().unwrap() > 0.5, "{row}");
        assert!(row["mean_margin"].as_f64().unwrap() > 0.0, "{row}");
        assert_eq!(row["verdict"], "collect more");
    }
    assert_eq!(coverage["categories"].as_array().unwrap().len(), 2);
    let page = server
        .client
        .get(server.url("/coverage"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(&products[0].1),
        "the Coverage page lists the products"
    );

    // A recognition dataset takes the confirmed crops in the splits it asks for.
    let (status, dataset) = post(
        &server,
        "/api/datasets",
        json!({"name": "field", "task": "recognition",
               "settings": {"seed": 4, "ratios": {"train": 0.6, "val": 0.4, "test": 0.0},
                            "real": {"train": false, "val": true}}}),
    )
    .await;
    assert_eq!(status, 201, "{dataset}");
    let id = dataset["id"].as_i64().unwrap();
    post(&server, &format!("/api/datasets/{id}/versions"), json!({})).await;
    let version = eventually(Duration::from_secs(60), "the version", || async {
        let v = get(&server, &format!("/api/datasets/{id}/versions/1")).await;
        (v["ready"] == true).then_some(v)
    })
    .await;
    let splits = version["splits"].as_array().unwrap();
    let count = |split: &str, field: &str| {
        splits
            .iter()
            .find(|s| s["split"] == split)
            .map_or(0, |s| s[field].as_i64().unwrap())
    };
    assert_eq!(count("train", "real"), 0, "{splits:?}");
    assert_eq!(
        count("val", "real"),
        count("val", "products"),
        "one crop per val product: {splits:?}"
    );
    assert!(count("val", "real") >= 1);
    let rendered: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM dataset_items WHERE kind = 'real' AND rendered_at IS NOT NULL
           AND jsonb_array_length(objects) = 1",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(rendered, count("val", "real"));
    // A detection dataset cannot take them.
    let (status, refused) = post(
        &server,
        "/api/datasets",
        json!({"name": "boxes", "task": "detect", "settings": {"real": {"train": true}}}),
    )
    .await;
    assert_eq!(status, 422, "{refused}");
    assert!(
        refused.to_string().contains("only a recognition"),
        "{refused}"
    );

    // A product deleted from the directory sends its crops back to review.
    sqlx::query("DELETE FROM products WHERE id = $1")
        .bind(products[3].0)
        .execute(&db.pool)
        .await
        .unwrap();
    let back = get(&server, &format!("/api/shelves/boxes/{}", boxes[3]["id"])).await;
    assert_eq!(back["box"]["status"], "suggested", "{back}");
    let note = back["box"]["note"].as_str().unwrap();
    assert!(
        note.contains(&products[3].1) && note.contains("deleted"),
        "{note}"
    );
    assert_eq!(
        get(&server, "/api/shelves/review").await["counts"]["left"],
        1
    );

    // The photo's page and the review page show it.
    let page = server
        .client
        .get(server.url(&format!("/shelves/{image_id}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(page.matches("class=\"shelf-box\"").count(), 6);
    assert!(page.contains("deleted from the directory"));
    worker.stop().await;
}

#[tokio::test]
async fn bad_uploads_and_boxes_are_refused_and_nothing_is_half_imported() {
    let db = TestDb::new().await;
    let pipeline = TestPipeline::new().await;
    let server = TestServer::start_with(&db.pool, pipeline.storage.clone()).await;
    let good = {
        let mut jpeg = Cursor::new(Vec::new());
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
            .encode_image(&RgbImage::from_pixel(400, 300, Rgb([100, 120, 140])))
            .unwrap();
        jpeg.into_inner()
    };
    let huge = {
        let mut png = Cursor::new(Vec::new());
        image::DynamicImage::ImageRgb8(RgbImage::new(12_001, 2))
            .write_to(&mut png, image::ImageFormat::Png)
            .unwrap();
        png.into_inner()
    };
    let heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic".to_vec();
    let cases: Vec<(Files<'_>, &str)> = vec![
        (
            vec![(good.clone(), "ok.jpg"), (b"hello".to_vec(), "notes.jpg")],
            "notes.jpg: this file is not an image",
        ),
        (vec![(huge, "huge.png")], "12001x2"),
        (vec![(heic, "IMG_0001.HEIC")], "HEIC"),
        (
            vec![
                (good.clone(), "ok.jpg"),
                (b"0 0.5 0.5 0.2 0.2\n".to_vec(), "other.txt"),
            ],
            "other.txt: names an image that is not in the upload",
        ),
        (
            vec![
                (good.clone(), "ok.jpg"),
                (b"0 1.5 0.5 0.2 0.2\n".to_vec(), "ok.txt"),
            ],
            "ok.txt, line 1: the box",
        ),
        (
            vec![
                (good.clone(), "ok.jpg"),
                (b"0 0.5 0.5 0 0.2\n".to_vec(), "ok.txt"),
            ],
            "has no size",
        ),
    ];
    for (files, says) in cases {
        let (status, body) = upload(&server, files).await;
        assert_eq!(status, 422, "{says}: {body}");
        let text = body.to_string();
        assert!(text.contains("Nothing was imported"), "{text}");
        assert!(
            text.to_lowercase().contains(&says.to_lowercase()),
            "{says}: {text}"
        );
    }
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM shelf_images")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(stored, 0);
    assert_eq!(
        objects_under(pipeline.storage_dir.path(), "shelves").await,
        0
    );

    // A ZIP: a photo, its labels, and a file left aside.
    let mut zip = Cursor::new(Vec::new());
    {
        let mut writer = zip::ZipWriter::new(&mut zip);
        let options = zip::write::FileOptions::default();
        for (name, bytes) in [
            ("shelf/images/ok.jpg", good.as_slice()),
            ("shelf/labels/ok.txt", b"0 0.5 0.5 0.25 0.5\n".as_slice()),
            ("shelf/README.md", b"# photos".as_slice()),
        ] {
            writer.start_file(name, options).unwrap();
            std::io::Write::write_all(&mut writer, bytes).unwrap();
        }
        writer.finish().unwrap();
    }
    let (status, report) = upload(&server, vec![(zip.into_inner(), "shelf.zip")]).await;
    assert_eq!(status, 201, "{report}");
    assert_eq!(report["boxes"], 1);
    assert_eq!(report["ignored"], json!(["shelf/README.md"]));
    let image = report["images"][0][0].as_i64().unwrap();

    // Boxes drawn through the API: outside the photo, of no size, refused.
    for (bad, says) in [
        (
            json!({"x": 380, "y": 10, "width": 40, "height": 20}),
            "runs outside the photo",
        ),
        (
            json!({"x": 10, "y": 10, "width": 0, "height": 20}),
            "no size",
        ),
    ] {
        let (status, body) = post(
            &server,
            &format!("/api/shelves/{image}/boxes"),
            json!({"boxes": [bad]}),
        )
        .await;
        assert_eq!(status, 422, "{body}");
        assert!(body.to_string().contains(says), "{body}");
    }
    let (status, added) = post(
        &server,
        &format!("/api/shelves/{image}/boxes"),
        json!({"boxes": [{"x": 10, "y": 20, "width": 60, "height": 80}]}),
    )
    .await;
    assert_eq!(status, 201, "{added}");
    let id = added["boxes"][0]["id"].as_i64().unwrap();
    let crop_key = added["boxes"][0]["crop_key"].as_str().unwrap().to_owned();
    let crop = pipeline.storage.get(&crop_key).await.unwrap();
    assert_eq!(image::load_from_memory(&crop).unwrap().width(), 518);
    // Moved: a new crop; deleted: gone.
    let moved = server
        .client
        .put(server.url(&format!("/api/shelves/boxes/{id}")))
        .json(&json!({"x": 100, "y": 20, "width": 60, "height": 80}))
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status(), 200);
    let moved: Value = moved.json().await.unwrap();
    assert_eq!(moved["x"], 100);
    assert_ne!(moved["crop_key"], crop_key.as_str());
    let deleted = server
        .client
        .delete(server.url(&format!("/api/shelves/boxes/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert_eq!(
        get(&server, &format!("/api/shelves/{image}")).await["boxes"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // The page's form: a box typed in, refused with the reason on the page.
    let form = server
        .client
        .post(server.url(&format!("/shelves/{image}/boxes")))
        .form(&[
            ("_csrf", server.csrf_token.as_str()),
            ("x", "390"),
            ("y", "0"),
            ("width", "50"),
            ("height", "50"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 422);
    assert!(
        form.text()
            .await
            .unwrap()
            .contains("runs outside the photo")
    );

    // Matching without a model serving is a clear refusal.
    let (status, body) = post(&server, "/api/shelves/match", json!({})).await;
    assert_eq!(status, 503, "{body}");
}

/// The Coverage table shows its products a page at a time (the category
/// summary still counts them all): 130 products with a confirmed crop each.
#[tokio::test]
async fn the_coverage_table_pages_through_many_products() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    let statements = [
        "INSERT INTO embedding_models (kind, name, dims, weights_hash, active, serving)
         VALUES ('classic', 'crafted', 2, 'crafted', true, true)",
        "INSERT INTO products (barcode, product_name, status, category)
         SELECT (2000000000000 + g)::text, 'Product ' || g, 'approved', 'drinks'
         FROM generate_series(1, 130) g",
        "INSERT INTO product_embeddings (model_id, product_id, embedding, frame_count)
         SELECT m.id, p.id, '[1,0]'::vector, 1 FROM products p, embedding_models m",
        "INSERT INTO shelf_images (file_name, original_key, storage_key, sha256, width, height)
         VALUES ('s.jpg', 'k', 'k', 'h', 100, 100)",
        "INSERT INTO shelf_boxes (image_id, x, y, width, height, source, crop_key, status, product_id)
         SELECT i.id, 0, 0, 10, 10, 'drawn', 'c', 'confirmed', p.id FROM products p, shelf_images i",
        "INSERT INTO shelf_crop_matches (box_id, model_id, embedding, gallery_product_id)
         SELECT b.id, m.id, '[1,0]'::vector, b.product_id FROM shelf_boxes b, embedding_models m",
    ];
    for sql in statements {
        sqlx::query(sql).execute(pool).await.unwrap();
    }
    let server = TestServer::start(pool).await;
    let page = |n: &str| {
        let url = server.url(&format!("/coverage{n}"));
        let client = server.client.clone();
        async move { client.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let rows = |html: &str| html.matches("<tr data-verdict=").count();
    let first = page("").await;
    assert!(first.contains("Products (130)"), "{first}");
    assert_eq!(rows(&first), 100);
    assert!(first.contains("1–100 of 130"), "{first}");
    assert!(
        first.contains(r#"href="/coverage?page=1" rel="next""#),
        "{first}"
    );
    let second = page("?page=1").await;
    assert_eq!(rows(&second), 30);
    assert!(second.contains("101–130 of 130"), "{second}");
    assert!(second.contains(r#"href="/coverage?page=0" rel="prev""#));
    assert!(!second.contains(r#"rel="next""#));
    // Past the end: the last page; the categories count every product.
    let past = page("?page=9").await;
    assert_eq!(rows(&past), 30);
    assert!(past.contains("<td>drinks</td><td>130</td>"), "{past}");
}
