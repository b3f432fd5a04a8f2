//! Many watch streams on one connection: etcd allows practically unlimited
//! concurrent HTTP/2 streams per connection, and clients that open one stream
//! per watcher rely on it (hyper's default would stop at 200).

use retcd_tests::Server;

use crate::{connect, next};

/// Streams opened on the one connection; well past hyper's default of 200.
const STREAMS: usize = 400;

#[tokio::test]
async fn hundreds_of_streams_share_one_connection() {
    let server = Server::ours();
    let client = connect(&server).await;
    let mut streams = Vec::with_capacity(STREAMS);
    for _ in 0..STREAMS {
        let mut stream = client.watch_client().watch("shared", None).await.unwrap();
        assert!(next(&mut stream).await.created());
        streams.push(stream);
    }
    let revision = client
        .kv_client()
        .put("shared", "v", None)
        .await
        .unwrap()
        .header()
        .unwrap()
        .revision();
    for stream in &mut streams {
        let resp = next(stream).await;
        assert_eq!(resp.events().len(), 1);
        assert_eq!(resp.events()[0].kv().unwrap().mod_revision(), revision);
    }
}
