//! `bench merchants`: merchant suggestions measured, in a throwaway database.
//!
//! - Quality: a synthetic directory (brands, kinds, variants and sizes, near
//!   neighbours included) with images of every product from a sample scene,
//!   and a merchant list made from it the way real lists differ
//!   (`actions::merchants::sample`: abbreviations, reordering, typos, other
//!   size spellings, 40 % of barcodes missing and 5 % wrong, 10 % of lines
//!   not in the directory, images from another scene of the product for 60 %
//!   of lines). The same list three times: names only, barcodes and names,
//!   and images added. Precision and recall of the top suggestion when it is
//!   confident, top-1 accuracy, and the "accept every exact barcode match"
//!   action's precision and recall.
//! - Speed: a list as large as the directory (100,000 lines against 100,000
//!   products by default), imported and suggested.

use std::{collections::HashMap, time::Instant};

use buybuddy_worker::{
    embed::{ClassicEmbedder, Embedder, Subject},
    media::synthetic::KINDS,
    postprocess,
};
use uuid::Uuid;

use crate::{
    actions::{
        Ctx, Intake,
        merchants::{
            self as act, BadLines,
            sample::{self, Differences, Known, SampleLine},
            score::CONFIDENT,
        },
    },
    config::DbArgs,
    db::{self, embeddings::Model},
    jobs::merchant_suggest,
};

#[derive(clap::Args, Debug)]
pub struct MerchantsArgs {
    #[command(flatten)]
    db: DbArgs,
    /// Directory products of the quality run (and 10 % more that the
    /// directory lacks).
    #[arg(long, default_value_t = 2000)]
    products: usize,
    /// Lines of the quality run's list.
    #[arg(long, default_value_t = 1000)]
    lines: usize,
    /// Products, and lines, of the speed run (0 leaves it out).
    #[arg(long, default_value_t = 100_000)]
    scale: usize,
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

pub async fn run(args: MerchantsArgs) -> anyhow::Result<()> {
    let db = super::Throwaway::create(&args.db).await?;
    let outcome = measure(&args, &db).await;
    db.drop().await?;
    outcome
}

async fn measure(args: &MerchantsArgs, db: &super::Throwaway) -> anyhow::Result<()> {
    let pool = db::connect(&db.url, 4, &[]).await?;
    let storage_dir = tempfile::tempdir()?;
    let storage = buybuddy_worker::storage::Storage::open(
        storage_dir.path().to_str().unwrap_or("."),
        &Default::default(),
    )
    .await?;
    let intake = Intake::command_line();
    let ctx = Ctx {
        pool: &pool,
        queue: crate::queue::DEFAULT_QUEUE,
        storage: &storage,
        intake: &intake,
    };
    if args.lines > 0 {
        quality(ctx, args).await?;
    }
    if args.scale > 0 {
        speed(ctx, args).await?;
    }
    Ok(())
}

/// Adds the directory's products (those with an id).
async fn insert_products(pool: &sqlx::PgPool, products: &[Known]) -> anyhow::Result<()> {
    for chunk in products.chunks(20_000) {
        let known: Vec<&Known> = chunk.iter().filter(|k| k.id.is_some()).collect();
        let ids: Vec<Uuid> = known.iter().filter_map(|k| k.id).collect();
        let text =
            |f: fn(&Known) -> &String| known.iter().map(|k| f(k).clone()).collect::<Vec<_>>();
        sqlx::query(
            "INSERT INTO products (id, barcode, brand_name, product_name, net_quantity, status)
             SELECT *, 'approved' FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[])",
        )
        .bind(&ids)
        .bind(text(|k| &k.barcode))
        .bind(text(|k| &k.brand))
        .bind(text(|k| &k.name))
        .bind(text(|k| &k.size))
        .execute(pool)
        .await?;
    }
    sqlx::query("ANALYZE products").execute(pool).await?;
    Ok(())
}

/// The scene a product is filmed in, and "another video" of it: the same
/// product before another kind's backdrop and light.
fn scenes(
    index: usize,
) -> (
    buybuddy_worker::media::synthetic::Scene,
    buybuddy_worker::media::synthetic::Scene,
) {
    let kind = KINDS[index % KINDS.len()];
    let filmed = buybuddy_worker::media::synthetic::Scene {
        width: 320,
        height: 240,
        frames: 12,
        ..kind.scene(20_000 + index as u64)
    };
    let other = KINDS[(index + 3) % KINDS.len()].scene(90_000 + index as u64);
    let elsewhere = buybuddy_worker::media::synthetic::Scene {
        product: filmed.product,
        width: 320,
        height: 240,
        frames: 12,
        ..other
    };
    (filmed, elsewhere)
}

/// A frame of a scene, framed as the video job frames it.
fn framed(
    scene: &buybuddy_worker::media::synthetic::Scene,
    i: usize,
) -> Option<(image::RgbImage, image::GrayImage)> {
    let (frame, mask) = scene.render(i);
    let done = postprocess::process(&frame, &mask, &postprocess::Options::default())?;
    Some((
        image::load_from_memory(&done.image).ok()?.to_rgb8(),
        image::load_from_memory(&done.mask).ok()?.to_luma8(),
    ))
}

/// Products' prototypes, and lines' image vectors by SKU.
type Vectors = (Vec<(Uuid, Vec<f32>)>, HashMap<String, Vec<f32>>);

/// Every product's prototype (three frames of its scene) and every line's
/// image vector (a frame of another scene of its product, without a mask).
fn vectors(
    products: &[Known],
    lines: &[SampleLine],
    embedder: &ClassicEmbedder,
) -> anyhow::Result<Vectors> {
    let mut prototypes = Vec::new();
    for (i, p) in products.iter().enumerate() {
        let Some(id) = p.id else { continue };
        let (filmed, _) = scenes(i);
        let frames: Vec<_> = [0, 4, 8]
            .iter()
            .filter_map(|&f| framed(&filmed, f))
            .collect();
        let subjects: Vec<Subject<'_>> = frames
            .iter()
            .map(|(image, mask)| Subject {
                image,
                mask: Some(mask),
            })
            .collect();
        let vectors = embedder.embed(&subjects)?;
        if let Some(prototype) = buybuddy_worker::embed::prototype(&vectors) {
            prototypes.push((id, prototype));
        }
    }
    let mut images = HashMap::new();
    for l in lines.iter().filter(|l| l.has_image) {
        let (_, elsewhere) = scenes(l.truth);
        if let Some((image, _)) = framed(&elsewhere, 6) {
            let v = embedder.embed(&[Subject {
                image: &image,
                mask: None,
            }])?;
            images.insert(l.sku.clone(), v.into_iter().next().unwrap_or_default());
        }
    }
    Ok((prototypes, images))
}

/// A line's top suggestion: SKU, product, score, exact.
type Top = (String, Option<Uuid>, Option<f32>, Option<bool>);

/// How a merchant's suggestions compare with the truth.
#[derive(Debug, Default)]
struct Figures {
    in_directory: usize,
    top_right: usize,
    confident: usize,
    confident_right: usize,
    bulk: usize,
    bulk_right: usize,
}

async fn figures(
    pool: &sqlx::PgPool,
    merchant: i32,
    lines: &[SampleLine],
    products: &[Known],
) -> anyhow::Result<Figures> {
    let truth: HashMap<&str, Option<Uuid>> = lines
        .iter()
        .map(|l| (l.sku.as_str(), products[l.truth].id))
        .collect();
    let rows: Vec<Top> = sqlx::query_as(
        "SELECT l.sku, s.product_id, s.score, s.exact FROM merchant_lines l
         LEFT JOIN merchant_suggestions s ON s.line_id = l.id AND s.rank = 1
         WHERE l.merchant_id = $1",
    )
    .bind(merchant)
    .fetch_all(pool)
    .await?;
    let mut f = Figures::default();
    for (sku, top, score, exact) in rows {
        let want = truth.get(sku.as_str()).copied().flatten();
        let right = want.is_some() && top == want;
        f.in_directory += usize::from(want.is_some());
        f.top_right += usize::from(right);
        if score.unwrap_or(f32::MIN) >= CONFIDENT {
            f.confident += 1;
            f.confident_right += usize::from(right);
        }
        if exact == Some(true) {
            f.bulk += 1;
            f.bulk_right += usize::from(right);
        }
    }
    Ok(f)
}

fn share(part: usize, whole: usize) -> String {
    if whole == 0 {
        "–".into()
    } else {
        format!("{:.3}", part as f64 / whole as f64)
    }
}

async fn suggest_all(pool: &sqlx::PgPool, model: Option<&Model>) -> anyhow::Result<(usize, f64)> {
    let started = Instant::now();
    let mut lines = 0;
    loop {
        let n = merchant_suggest::round(pool, model).await?;
        if n == 0 {
            break;
        }
        lines += n;
    }
    Ok((lines, started.elapsed().as_secs_f64()))
}

async fn import_list(
    ctx: Ctx<'_>,
    code: &str,
    lines: &[SampleLine],
    keep: impl Fn(&SampleLine) -> SampleLine,
) -> anyhow::Result<(i32, f64)> {
    let merchant = act::create(ctx, code, code)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let list: Vec<SampleLine> = lines.iter().map(keep).collect();
    let text = sample::csv(&list, |_| None);
    let started = Instant::now();
    let table = act::read_list(text.as_bytes()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mapping = act::offered_mapping(&merchant, &table);
    let outcome = act::import(
        ctx,
        &merchant,
        "list.csv",
        &table,
        &mapping,
        BadLines::ImportGood,
        None,
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    if let act::Imported::BadLines { bad, .. } = outcome {
        anyhow::bail!("the made list has bad lines: {bad:?}");
    }
    Ok((merchant.id, started.elapsed().as_secs_f64()))
}

async fn quality(ctx: Ctx<'_>, args: &MerchantsArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let products = sample::synthetic(args.products, args.products / 10, args.seed);
    let lines = sample::list(
        &products,
        args.lines,
        args.seed + 1,
        &Differences::default(),
    );
    insert_products(ctx.pool, &products).await?;
    let embedder = ClassicEmbedder::default();
    let model = db::embeddings::register(ctx.pool, embedder.info(), true).await?;
    let (prototypes, images) = {
        let (products, lines) = (products.clone(), lines.clone());
        tokio::task::spawn_blocking(move || vectors(&products, &lines, &ClassicEmbedder::default()))
            .await??
    };
    for (id, prototype) in &prototypes {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO product_embeddings (model_id, product_id, embedding, frame_count)
             VALUES ($1, $2, $3::text::vector({}), 3)",
            model.dims
        )))
        .bind(model.id)
        .bind(id)
        .bind(db::embeddings::vector_text(prototype))
        .execute(ctx.pool)
        .await?;
    }
    let in_directory = lines
        .iter()
        .filter(|l| products[l.truth].id.is_some())
        .count();
    println!(
        "quality: {} directory products ({} frames each, classic descriptor), a list of {} lines \
         ({} of products the directory lacks, {} with a barcode, {} with an image), made in {:.1} s",
        args.products,
        3,
        lines.len(),
        lines.len() - in_directory,
        lines.iter().filter(|l| l.barcode.is_some()).count(),
        images.len(),
        started.elapsed().as_secs_f64()
    );
    let names_only = |l: &SampleLine| SampleLine {
        barcode: None,
        ..l.clone()
    };
    let (names, _) = import_list(ctx, "names", &lines, names_only).await?;
    let (barcodes, _) = import_list(ctx, "barcodes", &lines, Clone::clone).await?;
    let (with_images, _) = import_list(ctx, "images", &lines, Clone::clone).await?;
    let skus: HashMap<String, i64> =
        sqlx::query_as("SELECT sku, id FROM merchant_lines WHERE merchant_id = $1")
            .bind(with_images)
            .fetch_all(ctx.pool)
            .await?
            .into_iter()
            .collect();
    for (sku, vector) in &images {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO merchant_line_embeddings (line_id, model_id, embedding)
             VALUES ($1, $2, $3::text::vector({}))",
            model.dims
        )))
        .bind(skus[sku])
        .bind(model.id)
        .bind(db::embeddings::vector_text(vector))
        .execute(ctx.pool)
        .await?;
    }
    let (suggested, seconds) = suggest_all(ctx.pool, Some(&model)).await?;
    println!(
        "suggested {suggested} lines in {seconds:.1} s ({:.0} lines/s)",
        suggested as f64 / seconds
    );
    println!();
    println!(
        "| signals | top-1 right (of lines in the directory) | confident precision | confident recall | exact barcode matches: precision | recall |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for (label, merchant) in [
        ("names only", names),
        ("barcodes and names", barcodes),
        ("barcodes, names and images", with_images),
    ] {
        let f = figures(ctx.pool, merchant, &lines, &products).await?;
        println!(
            "| {label} | {} | {} | {} | {} | {} |",
            share(f.top_right, f.in_directory),
            share(f.confident_right, f.confident),
            share(f.confident_right, f.in_directory),
            share(f.bulk_right, f.bulk),
            share(f.bulk_right, f.in_directory),
        );
    }
    println!(
        "\nconfident: the top suggestion's score is at least {CONFIDENT}; precision counts a \
         confident suggestion for a line the directory lacks as wrong."
    );
    Ok(())
}

async fn speed(ctx: Ctx<'_>, args: &MerchantsArgs) -> anyhow::Result<()> {
    sqlx::query("TRUNCATE merchants, products CASCADE")
        .execute(ctx.pool)
        .await?;
    let n = args.scale;
    let started = Instant::now();
    let products = sample::synthetic(n, n / 10, args.seed + 10);
    insert_products(ctx.pool, &products).await?;
    let made = started.elapsed().as_secs_f64();
    let lines = sample::list(
        &products,
        n,
        args.seed + 11,
        &Differences {
            image: 0.0,
            ..Differences::default()
        },
    );
    let (merchant, imported) = import_list(ctx, "large", &lines, Clone::clone).await?;
    sqlx::query("ANALYZE merchant_lines")
        .execute(ctx.pool)
        .await?;
    let (suggested, seconds) = suggest_all(ctx.pool, None).await?;
    let f = figures(ctx.pool, merchant, &lines, &products).await?;
    println!();
    println!(
        "speed: {n} products ({made:.1} s to add), a list of {} lines imported from CSV in {imported:.1} s \
         ({:.0} lines/s)",
        lines.len(),
        lines.len() as f64 / imported
    );
    println!(
        "suggested {suggested} lines (barcodes and names) in {seconds:.1} s: {:.0} lines/s; top-1 right {}",
        suggested as f64 / seconds,
        share(f.top_right, f.in_directory)
    );
    Ok(())
}
