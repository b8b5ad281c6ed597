//! Both storage backends through the same calls: a local folder, and S3 against
//! a real S3-compatible server (s3s-fs) on loopback.

use std::net::SocketAddr;

use buybuddy_worker::storage::{S3Settings, Storage, StorageError};
use bytes::Bytes;
use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto::Builder,
};
use s3s::{auth::SimpleAuth, service::S3ServiceBuilder};

const KEY: &str = "test-access-key";
const SECRET: &str = "test-secret-key";

/// Starts an S3-compatible server on a free loopback port; it lives as long as the test.
async fn s3_server(root: &std::path::Path) -> SocketAddr {
    let fs = s3s_fs::FileSystem::new(root).unwrap();
    let mut builder = S3ServiceBuilder::new(fs);
    builder.set_auth(SimpleAuth::from_single(KEY, SECRET));
    let service = builder.build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let service = service.clone();
            tokio::spawn(async move {
                let _ = Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(socket), service)
                    .await;
            });
        }
    });
    address
}

fn settings(address: SocketAddr) -> S3Settings {
    S3Settings {
        endpoint: Some(format!("http://{address}")),
        region: Some("us-east-1".into()),
        path_style: true,
        credentials: Some((KEY.into(), SECRET.into())),
    }
}

async fn s3_storage(prefix: &str) -> (Storage, tempfile::TempDir, S3Settings) {
    let root = tempfile::tempdir().unwrap();
    let address = s3_server(root.path()).await;
    let settings = settings(address);
    settings
        .client()
        .await
        .create_bucket()
        .bucket("frames")
        .send()
        .await
        .unwrap();
    let storage = Storage::open(&format!("s3://frames/{prefix}"), &settings)
        .await
        .unwrap();
    (storage, root, settings)
}

/// The same behaviour, whatever the backend.
async fn behaves_like_storage(storage: &Storage) {
    storage.check().await.unwrap();
    let png = Bytes::from_static(b"\x89PNG fake frame");
    storage
        .put("frames/869/j1/0000.png", png.clone(), "image/png")
        .await
        .unwrap();
    storage
        .put("frames/869/j1/0001.png", png.clone(), "image/png")
        .await
        .unwrap();
    storage
        .put("frames/869/j2/0000.png", png.clone(), "image/png")
        .await
        .unwrap();
    // Writing a key again replaces the object.
    storage
        .put(
            "frames/869/j1/0001.png",
            Bytes::from_static(b"second"),
            "image/png",
        )
        .await
        .unwrap();
    assert_eq!(
        storage
            .get("frames/869/j1/0001.png")
            .await
            .unwrap()
            .as_ref(),
        b"second"
    );
    assert_eq!(
        storage.list("frames/869/j1/").await.unwrap(),
        ["frames/869/j1/0000.png", "frames/869/j1/0001.png"]
    );
    storage
        .delete(&["frames/869/j2/0000.png".into(), "frames/none.png".into()])
        .await
        .unwrap();
    assert!(storage.list("frames/869/j2/").await.unwrap().is_empty());
    storage
        .put("frames/869/j2/0000.png", png.clone(), "image/png")
        .await
        .unwrap();
    assert_eq!(storage.delete_prefix("frames/869/j1/").await.unwrap(), 2);
    assert!(storage.list("frames/869/j1/").await.unwrap().is_empty());
    assert_eq!(
        storage.list("frames/").await.unwrap(),
        ["frames/869/j2/0000.png"]
    );
    assert!(matches!(
        storage.get("frames/869/j1/0000.png").await,
        Err(StorageError::NotFound(_))
    ));
    assert!(matches!(
        storage.get_stream("frames/869/j1/0000.png").await,
        Err(StorageError::NotFound(_))
    ));
    let stream = storage.get_stream("frames/869/j2/0000.png").await.unwrap();
    assert_eq!(stream.size, 15);
    assert_eq!(read_stream(stream).await, b"\x89PNG fake frame");
    assert!(matches!(
        storage.put("../escape.png", png, "image/png").await,
        Err(StorageError::BadKey(_))
    ));
}

async fn read_stream(stream: buybuddy_worker::storage::ObjectStream) -> Vec<u8> {
    use futures::TryStreamExt;
    let chunks: Vec<Bytes> = stream.body.try_collect().await.unwrap();
    chunks.concat()
}

#[tokio::test]
async fn local_folder_storage() {
    let root = tempfile::tempdir().unwrap();
    let storage = Storage::open(root.path().to_str().unwrap(), &S3Settings::default())
        .await
        .unwrap();
    behaves_like_storage(&storage).await;
    assert_eq!(
        storage.url("frames/1/a.png"),
        format!("file://{}/frames/1/a.png", root.path().display())
    );
    // Emptied folders go with their objects.
    assert!(!root.path().join("frames/869/j1").exists());
}

#[tokio::test]
async fn s3_storage_against_an_s3_compatible_server() {
    let (storage, _root, _) = s3_storage("").await;
    behaves_like_storage(&storage).await;
    assert_eq!(storage.url("frames/1/a.png"), "s3://frames/frames/1/a.png");
}

#[tokio::test]
async fn s3_storage_under_a_prefix_keeps_to_it() {
    let (storage, _root, settings) = s3_storage("team-a/").await;
    storage
        .put("x/1.png", Bytes::from_static(b"1"), "image/png")
        .await
        .unwrap();
    assert_eq!(storage.url("x/1.png"), "s3://frames/team-a/x/1.png");
    let whole = Storage::open("s3://frames", &settings).await.unwrap();
    assert_eq!(whole.list("").await.unwrap(), ["team-a/x/1.png"]);
    assert_eq!(storage.list("").await.unwrap(), ["x/1.png"]);
}

#[tokio::test]
async fn large_files_go_up_in_parts() {
    let (storage, _root, _) = s3_storage("").await;
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("big.mp4");
    // 20 MiB: above the 16 MiB threshold, three parts of at most 8 MiB.
    let data: Vec<u8> = (0..20 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&video, &data).unwrap();
    storage
        .put_file("uploads/big.mp4", &video, "video/mp4")
        .await
        .unwrap();
    let back = storage.get("uploads/big.mp4").await.unwrap();
    assert_eq!(back.len(), data.len());
    assert!(
        back.as_ref() == data.as_slice(),
        "the object reads back as written"
    );
    // Streamed, it comes in chunks of at most 256 KiB and reads back the same.
    let stream = storage.get_stream("uploads/big.mp4").await.unwrap();
    assert_eq!(stream.size, data.len() as u64);
    assert!(
        read_stream(stream).await == data,
        "the stream reads back as written"
    );
}

#[tokio::test]
async fn a_wrong_secret_is_refused() {
    let (_, _root, mut settings) = s3_storage("").await;
    settings.credentials = Some((KEY.into(), "wrong".into()));
    let storage = Storage::open("s3://frames", &settings).await.unwrap();
    let error = storage.check().await.unwrap_err().to_string();
    assert!(error.contains("S3"), "{error}");
}
