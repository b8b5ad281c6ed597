//! Merchant assignment against real parts: the SQL that normalises names,
//! sizes and barcodes; a list imported over the API (encodings, delimiters,
//! bad lines, re-imports by SKU); suggestions made by a worker and ranked on
//! crafted products with the parts of their scores; images fetched from a
//! local server; decisions with their history and conflicts; the bulk
//! acceptance of exact barcode matches; and the export read back.

use crate::common;

use std::{net::SocketAddr, time::Duration};

use common::*;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::datasets::{get, masked_products, post, worker_pool};

async fn scalar(pool: &sqlx::PgPool, sql: &str) -> Value {
    let value: Option<serde_json::Value> =
        sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT to_jsonb(({sql}))")))
            .fetch_one(pool)
            .await
            .unwrap();
    value.unwrap_or(Value::Null)
}

#[tokio::test]
async fn names_sizes_and_barcodes_are_compared_in_one_spelling() {
    let db = TestDb::new().await;
    let pool = &db.pool;
    for (given, normal) in [
        ("Coca-Cola Zero 0,5L", "coca cola zero 500ml"),
        ("COCA COLA ZERO 500 ML", "coca cola zero 500ml"),
        ("Coca Cola Zero 50cl", "coca cola zero 500ml"),
        ("Sütaş Süt 1 Lt", "sutas sut 1000ml"),
        ("Rice 1 kg", "rice 1000g"),
        ("Rice 1000 gr.", "rice 1000g"),
        ("Tea 2.5g x 20", "tea 2.5g x 20"),
        ("  --  ", ""),
    ] {
        assert_eq!(
            scalar(pool, &format!("normalize_name('{given}')")).await,
            json!(normal),
            "{given}"
        );
    }
    assert_eq!(
        scalar(pool, "quantity_key('Water 1.5 lt pack')").await,
        json!("1500ml")
    );
    assert_eq!(scalar(pool, "quantity_key('Water')").await, Value::Null);
    assert_eq!(
        scalar(pool, "gtin_valid('4006381333931')").await,
        json!(true)
    );
    assert_eq!(
        scalar(pool, "gtin_valid('4006381333932')").await,
        json!(false)
    );
    assert_eq!(
        scalar(pool, "gtin_valid('036000291452')").await,
        json!(true)
    );
    assert_eq!(scalar(pool, "gtin_valid('96385074')").await, json!(true));
    assert_eq!(scalar(pool, "gtin_valid('12345')").await, json!(false));
    assert_eq!(
        scalar(
            pool,
            "barcode_key('0036000291452') = barcode_key('036000291452')"
        )
        .await,
        json!(true)
    );
    assert_eq!(
        scalar(pool, "barcode_key(' 4006-3813-33931 ')").await,
        json!("4006381333931")
    );
}

async fn import(
    server: &TestServer,
    merchant: &str,
    bytes: Vec<u8>,
    mapping: Option<Value>,
    bad_lines: &str,
) -> (u16, Value) {
    let mut form = reqwest::multipart::Form::new()
        .part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name("list.csv"),
        )
        .text("bad_lines", bad_lines.to_owned());
    if let Some(m) = mapping {
        form = form.text("mapping", m.to_string());
    }
    let response = server
        .client
        .post(server.url(&format!("/api/merchants/{merchant}/imports")))
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

async fn lines_of(pool: &sqlx::PgPool) -> Vec<(String, Option<String>, bool)> {
    sqlx::query_as("SELECT sku, name, removed_at IS NOT NULL FROM merchant_lines ORDER BY sku")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_list_imports_with_its_bad_lines_named_and_imports_again_by_sku() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db.pool).await;
    let (status, merchant) = post(
        &server,
        "/api/merchants",
        json!({"code": "migros", "name": "Migros"}),
    )
    .await;
    assert_eq!(status, 201, "{merchant}");
    let (status, again) = post(
        &server,
        "/api/merchants",
        json!({"code": "migros", "name": "Other"}),
    )
    .await;
    assert_eq!(status, 422, "{again}");

    // Latin-1, semicolons; two bad lines.
    let mut latin1 = Vec::new();
    for line in [
        "Kod;Aciklama;Marka;EAN;Fiyat",
        "1;Caf\u{e9} cr\u{e8}me 250 g;Nescaf\u{e9};4006381333931;12,50",
        ";No code;;;",
        "3;Bad barcode;X;12AB;1",
        "4;Eau min\u{e9}rale 1,5 L;Evian;;0,80",
    ] {
        latin1.extend(line.chars().map(|c| u8::try_from(c as u32).unwrap_or(b'?')));
        latin1.push(b'\n');
    }
    let mapping = json!({"sku": "Kod", "name": "Aciklama", "brand": "Marka", "barcode": "EAN", "price": "Fiyat"});
    let (status, body) = import(
        &server,
        "migros",
        latin1.clone(),
        Some(mapping.clone()),
        "refuse",
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let bad = body["result"]["bad"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"));
    assert_eq!(bad.len(), 2, "{body}");
    assert_eq!(bad[0]["line"], 3);
    assert_eq!(bad[0]["reason"], "no SKU");
    assert_eq!(bad[1]["line"], 4);
    assert!(bad[1]["reason"].as_str().unwrap().contains("not a GTIN"));
    assert_eq!(body["result"]["good"], 2);
    assert!(
        lines_of(&db.pool).await.is_empty(),
        "nothing is half imported"
    );

    let (status, body) = import(&server, "migros", latin1, Some(mapping), "import_good").await;
    assert_eq!(status, 201, "{body}");
    let report = &body["result"]["import"];
    assert_eq!(
        (
            report["added"].as_i64(),
            report["encoding"].as_str(),
            report["delimiter"].as_str()
        ),
        (Some(2), Some("Latin-1"), Some(";"))
    );
    assert_eq!(report["skipped"].as_array().unwrap().len(), 2);
    let lines = lines_of(&db.pool).await;
    assert_eq!(lines[0].1.as_deref(), Some("Café crème 250 g"));
    let price: Option<String> =
        sqlx::query_scalar("SELECT price::text FROM merchant_lines WHERE sku = '1'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(price.as_deref(), Some("12.50"));

    // Again, as UTF-8 with tabs and the remembered mapping: one unchanged,
    // one added, one removed.
    let utf8 = "Kod\tAciklama\tMarka\tEAN\tFiyat\n\
                1\tCafé crème 250 g\tNescafé\t4006381333931\t12,50\n\
                5\tÇay 500 g\tÇaykur\t\t3\n";
    let (status, body) = import(&server, "migros", utf8.as_bytes().to_vec(), None, "refuse").await;
    assert_eq!(status, 201, "{body}");
    let report = &body["result"]["import"];
    assert_eq!(report["encoding"], "UTF-8");
    assert_eq!(report["delimiter"], "tab");
    assert_eq!(
        body["mapping"]["name"], "Aciklama",
        "the mapping is remembered"
    );
    assert_eq!(
        (
            report["added"].as_i64(),
            report["changed"].as_i64(),
            report["unchanged"].as_i64(),
            report["removed"].as_i64()
        ),
        (Some(1), Some(0), Some(1), Some(1)),
        "{report}"
    );
    let changed = "Kod\tAciklama\tMarka\tEAN\tFiyat\n\
                   1\tCafé crème 200 g\tNescafé\t4006381333931\t12,50\n\
                   5\tÇay 500 g\tÇaykur\t\t3\n";
    let (_, body) = import(
        &server,
        "migros",
        changed.as_bytes().to_vec(),
        None,
        "refuse",
    )
    .await;
    let report = &body["result"]["import"];
    assert_eq!(
        (report["changed"].as_i64(), report["unchanged"].as_i64()),
        (Some(1), Some(1)),
        "{report}"
    );
    let lines = lines_of(&db.pool).await;
    assert_eq!(
        lines,
        [
            ("1".to_owned(), Some("Café crème 200 g".to_owned()), false),
            ("4".to_owned(), Some("Eau minérale 1,5 L".to_owned()), true),
            ("5".to_owned(), Some("Çay 500 g".to_owned()), false),
        ]
    );
    // A mapping without a SKU, or naming a header the file lacks, is refused.
    let (status, body) = import(
        &server,
        "migros",
        changed.as_bytes().to_vec(),
        Some(json!({"name": "Aciklama"})),
        "refuse",
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("SKU"));
    let shown = get(&server, "/api/merchants/migros").await;
    assert_eq!(shown["progress"]["lines"], 2);
    assert_eq!(shown["imports"].as_array().unwrap().len(), 3);
}

/// A product of the directory with these catalog fields.
async fn product(pool: &sqlx::PgPool, barcode: &str, brand: &str, name: &str, size: &str) -> Uuid {
    sqlx::query_scalar(
        "INSERT INTO products (barcode, brand_name, product_name, net_quantity, status)
         VALUES ($1, $2, $3, $4, 'approved') RETURNING id",
    )
    .bind(barcode)
    .bind(brand)
    .bind(name)
    .bind(size)
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn suggestions_of(server: &TestServer, pool: &sqlx::PgPool, sku: &str) -> Value {
    let id: i64 = sqlx::query_scalar("SELECT id FROM merchant_lines WHERE sku = $1")
        .bind(sku)
        .fetch_one(pool)
        .await
        .unwrap();
    get(server, &format!("/api/merchants/lines/{id}")).await
}

async fn wait_suggested(pool: &sqlx::PgPool) {
    eventually(Duration::from_secs(60), "the suggestions", || async {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM merchant_lines WHERE suggested_at IS NULL AND removed_at IS NULL",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        let busy: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM jobs WHERE kind LIKE 'merchant_%' AND status IN ('queued', 'running')",
        )
        .fetch_one(pool)
        .await
        .unwrap();
        (waiting == 0 && busy == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn suggestions_rank_by_barcode_name_and_size_and_decisions_keep_their_history() {
    let db = TestDb::new().await;
    let server = TestServer::start(&db.pool).await;
    let pipeline = TestPipeline::new().await;
    let worker = InProcessWorker::start(
        &worker_pool(&db).await,
        buybuddy::queue::worker::WorkerConfig {
            kinds: vec!["merchant_suggest", "merchant_images"],
            ..pipeline.worker_config()
        },
    );
    let zero = product(
        &db.pool,
        "5449000131805",
        "Coca-Cola",
        "Coca-Cola Zero",
        "330 ml",
    )
    .await;
    let zero_big = product(
        &db.pool,
        "5449000134264",
        "Coca-Cola",
        "Coca-Cola Zero",
        "1 L",
    )
    .await;
    let pepsi = product(&db.pool, "4060800001231", "Pepsi", "Pepsi Max", "330 ml").await;
    product(&db.pool, "5449000011527", "Fanta", "Fanta Orange", "330 ml").await;
    post(
        &server,
        "/api/merchants",
        json!({"code": "a101", "name": "A101"}),
    )
    .await;
    let list = "sku,description,brand,size,ean\n\
                S1,COCA COLA ZERO 33CL,COCA-COLA,,5449000131805\n\
                S2,coca-cola zero 1 lt,,,\n\
                S3,PEPSI MAX 0.33L,Pepsi,,\n\
                S4,Ayran 250 ml,Sutas,,\n\
                S5,Coca Cola Zero can,,330ml,5449000131806\n";
    let mapping = json!({"sku": "sku", "name": "description", "brand": "brand", "size": "size", "barcode": "ean"});
    let (status, body) = import(
        &server,
        "a101",
        list.as_bytes().to_vec(),
        Some(mapping),
        "refuse",
    )
    .await;
    assert_eq!(status, 201, "{body}");
    wait_suggested(&db.pool).await;

    let top = |v: &Value| {
        v["suggestions"][0]["product"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let s1 = suggestions_of(&server, &db.pool, "S1").await;
    assert_eq!(top(&s1), zero.to_string(), "{s1}");
    assert_eq!(s1["suggestions"][0]["exact"], true);
    let says: Vec<&str> = s1["suggestions"][0]["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["says"].as_str().unwrap())
        .collect();
    assert!(
        says.contains(&"same barcode (check digit valid)"),
        "{says:?}"
    );
    assert!(
        says.contains(&"same size") && says.contains(&"same brand"),
        "{says:?}"
    );
    // By name alone, the size decides between the two sizes of one product.
    let s2 = suggestions_of(&server, &db.pool, "S2").await;
    assert_eq!(top(&s2), zero_big.to_string(), "{s2}");
    let second = &s2["suggestions"][1];
    assert_eq!(second["product"]["id"], zero.to_string());
    assert!(
        second["parts"].to_string().contains("another size"),
        "{second}"
    );
    assert_eq!(
        top(&suggestions_of(&server, &db.pool, "S3").await),
        pepsi.to_string()
    );
    // Nothing like it: a low score, so it shows under low confidence.
    let s4 = suggestions_of(&server, &db.pool, "S4").await;
    assert!(
        s4["suggestions"][0]["score"].as_f64().unwrap() < 0.3,
        "{s4}"
    );
    // A barcode one digit off (its check digit fails) does not match, and
    // says so; the name still finds the product.
    let s5 = suggestions_of(&server, &db.pool, "S5").await;
    assert_eq!(top(&s5), zero.to_string());
    assert_eq!(s5["suggestions"][0]["exact"], false);
    assert!(s5["line"]["barcode_valid"] == false, "{s5}");
    let low: Value = get(&server, "/api/merchants/a101/lines?filter=low_confidence").await;
    let low_skus: Vec<&str> = low["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["sku"].as_str().unwrap())
        .collect();
    assert!(
        low_skus.contains(&"S4") && !low_skus.contains(&"S1"),
        "{low_skus:?}"
    );

    // Bulk: only S1 (exact barcode, name agrees); counted first.
    let (_, counted) = post(
        &server,
        "/api/merchants/a101/bulk",
        json!({"confirm": false}),
    )
    .await;
    assert_eq!(counted, json!({"lines": 1, "accepted": false}));
    assert_eq!(
        get(&server, "/api/merchants/a101").await["progress"]["assigned"],
        0
    );
    let (_, done) = post(
        &server,
        "/api/merchants/a101/bulk",
        json!({"confirm": true}),
    )
    .await;
    assert_eq!(done["lines"], 1);
    let s1 = suggestions_of(&server, &db.pool, "S1").await;
    assert_eq!(s1["line"]["status"], "assigned");
    assert_eq!(s1["history"][0]["via"], "bulk");
    assert_eq!(s1["history"][0]["suggested"], true);

    // Review: S5 to the same product makes a conflict, shown on both sides.
    let line_id = |v: &Value| v["line"]["id"].as_i64().unwrap();
    let (status, _) = post(
        &server,
        &format!("/api/merchants/lines/{}/decide", line_id(&s5)),
        json!({"action": "assign", "product": "5449000131805"}),
    )
    .await;
    assert_eq!(status, 200);
    let s5 = suggestions_of(&server, &db.pool, "S5").await;
    assert_eq!(s5["conflicts"][0][1], "S1");
    assert_eq!(
        get(&server, "/api/merchants/a101").await["progress"]["conflicts"],
        1
    );
    let conflicts = get(&server, "/api/merchants/a101/lines?filter=conflicts").await;
    assert_eq!(conflicts["total"], 2);
    // Another line's candidates say which lines that product is assigned to.
    let s3 = suggestions_of(&server, &db.pool, "S3").await;
    let taken = s3["suggestions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["product"]["id"] == zero.to_string())
        .unwrap();
    let skus: Vec<&str> = taken["assigned_to"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a[1].as_str().unwrap())
        .collect();
    assert_eq!(skus, ["S1", "S5"]);
    // Changed, not overwritten: S5 is not in the directory after all; then cleared.
    for action in ["absent", "clear"] {
        let (status, _) = post(
            &server,
            &format!("/api/merchants/lines/{}/decide", line_id(&s5)),
            json!({"action": action}),
        )
        .await;
        assert_eq!(status, 200);
    }
    let s5 = suggestions_of(&server, &db.pool, "S5").await;
    let history: Vec<&str> = s5["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["status"].as_str().unwrap())
        .collect();
    assert_eq!(history, ["cleared", "absent", "assigned"]);
    assert_eq!(s5["line"]["status"], Value::Null);
    assert_eq!(s5["history"][2]["decided_by"], server.email.as_str());
    let (status, refused) = post(
        &server,
        &format!("/api/merchants/lines/{}/decide", line_id(&s5)),
        json!({"action": "assign", "product": "0000"}),
    )
    .await;
    assert_eq!(status, 422, "{refused}");
    post(
        &server,
        &format!("/api/merchants/lines/{}/decide", line_id(&s4)),
        json!({"action": "absent"}),
    )
    .await;

    // The export, read back.
    let csv = server
        .client
        .get(server.url("/api/merchants/a101/export?format=csv"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(
        reader.headers().unwrap().iter().next(),
        Some("merchant_sku")
    );
    assert_eq!(rows.len(), 5);
    assert_eq!(
        (&rows[0][0], &rows[0][2], &rows[0][3]),
        ("S1", "assigned", "5449000131805")
    );
    assert_eq!(&rows[0][4], zero.to_string().as_str());
    assert_eq!(&rows[0][7], server.email.as_str());
    assert_eq!((&rows[3][0], &rows[3][2]), ("S4", "absent"));
    assert_eq!((&rows[4][0], &rows[4][2]), ("S5", "undecided"));
    let json_export: Value = server
        .client
        .get(server.url("/api/merchants/a101/export?format=json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(json_export["lines"].as_array().unwrap().len(), 5);
    assert_eq!(json_export["lines"][0]["barcode"], "5449000131805");
    worker.stop().await;
}

/// Serves one image at `/photo.jpg`; `/missing.jpg` is a 404.
async fn image_server(image: Vec<u8>) -> SocketAddr {
    let app = axum::Router::new().route(
        "/photo.jpg",
        axum::routing::get(move || {
            let image = image.clone();
            async move { ([("content-type", "image/jpeg")], image) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

#[tokio::test]
async fn a_lines_image_is_fetched_embedded_and_finds_its_product() {
    let db = TestDb::new().await;
    let pipeline = TestPipeline::new().await;
    pipeline.resources.register_models(&db.pool).await.unwrap();
    let products = masked_products(&db.pool, &pipeline.storage, 3, 4).await;
    let server = TestServer::start_with(&db.pool, pipeline.storage.clone()).await;
    let worker = InProcessWorker::start(&worker_pool(&db).await, pipeline.worker_config());
    buybuddy::actions::search::backfill(&db.pool, buybuddy::queue::DEFAULT_QUEUE, None)
        .await
        .unwrap();
    eventually(Duration::from_secs(60), "the products' vectors", || async {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM product_embeddings")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        (n == 3).then_some(())
    })
    .await;
    // The merchant's picture of product 2 is one of its frames.
    let key: String = sqlx::query_scalar(
        "SELECT storage_key FROM frames WHERE product_id = $1 AND frame_index = 1",
    )
    .bind(products[2].0)
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let frame = image::load_from_memory(&pipeline.storage.get(&key).await.unwrap()).unwrap();
    let mut jpeg = std::io::Cursor::new(Vec::new());
    frame.write_to(&mut jpeg, image::ImageFormat::Jpeg).unwrap();
    let address = image_server(jpeg.into_inner()).await;
    post(
        &server,
        "/api/merchants",
        json!({"code": "bim", "name": "BIM"}),
    )
    .await;
    let list = format!(
        "sku,name,image\nP1,a drink,http://{address}/photo.jpg\nP2,a drink,http://{address}/missing.jpg\n"
    );
    let (status, body) = import(
        &server,
        "bim",
        list.into_bytes(),
        Some(json!({"sku": "sku", "name": "name", "image_url": "image"})),
        "refuse",
    )
    .await;
    assert_eq!(status, 201, "{body}");
    wait_suggested(&db.pool).await;
    let p1 = suggestions_of(&server, &db.pool, "P1").await;
    assert_eq!(p1["line"]["image_state"], "stored", "{p1}");
    assert_eq!(
        p1["suggestions"][0]["product"]["barcode"], products[2].1,
        "{p1}"
    );
    let image = p1["suggestions"][0]["signals"]["image_similarity"]
        .as_f64()
        .unwrap();
    assert!(image > 0.9, "{image}");
    assert!(p1["suggestions"][0]["parts"].to_string().contains("images"));
    let p2 = suggestions_of(&server, &db.pool, "P2").await;
    assert_eq!(p2["line"]["image_state"], "failed");
    assert!(
        p2["line"]["image_error"]
            .as_str()
            .unwrap()
            .contains("not found"),
        "{p2}"
    );
    worker.stop().await;
}
