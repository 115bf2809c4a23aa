//! kill -9 during a burst of API writes: every write the API acknowledged
//! is there after a restart, on both backends.
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use super::{PgDatabase, StoreUnderTest};
use crate::common::{Gateway, eventually};
use crate::gateway::HEAD;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9_on_sqlite() {
    acknowledged_writes_survive_kill_9(StoreUnderTest::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9_on_postgres() {
    let Some(db) = PgDatabase::create().await else {
        return;
    };
    acknowledged_writes_survive_kill_9(StoreUnderTest::Postgres(db)).await;
}

async fn acknowledged_writes_survive_kill_9(store: StoreUnderTest) {
    let data = tempfile::tempdir().unwrap();
    let data_dir = data.path().display().to_string();
    let config = format!("{HEAD}{}", store.config());
    let gw = Gateway::builder(&config)
        .env("BULWARK__SERVER__DATA_DIR", &data_dir)
        .start();
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let (http, url, acked) = (
                gw.http().clone(),
                gw.url("/api/v1/projects"),
                acknowledged.clone(),
            );
            tokio::spawn(async move {
                for n in 0.. {
                    let name = format!("p{writer}-{n}");
                    let sent = http
                        .post(&url)
                        .json(&json!({"name": name, "upstreams": ["*"]}))
                        .send()
                        .await;
                    match sent {
                        Ok(response) if response.status() == 201 => {
                            acked.lock().unwrap().push(name)
                        }
                        Ok(response) => panic!("write refused: {}", response.status()),
                        Err(_) => return, // the gateway is gone
                    }
                }
            })
        })
        .collect();
    let enough = eventually(Duration::from_secs(30), || {
        acknowledged.lock().unwrap().len() >= 40
    })
    .await;
    assert!(
        enough,
        "too few writes acknowledged: {}",
        acknowledged.lock().unwrap().len()
    );
    drop(gw); // SIGKILL to the whole process group, mid-burst
    for writer in writers {
        writer.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();

    let gw = Gateway::builder(&config)
        .env("BULWARK__SERVER__DATA_DIR", &data_dir)
        .start();
    let mut stored: Vec<String> = Vec::new();
    loop {
        let path = format!("/api/v1/projects?limit=500&offset={}", stored.len());
        let (status, listed) = gw.get_json(&path).await;
        assert!(status.is_success(), "{listed}");
        let items = listed["items"].as_array().unwrap();
        stored.extend(
            items
                .iter()
                .filter_map(|p| p["name"].as_str().map(str::to_owned)),
        );
        if items.is_empty() || stored.len() as u64 >= listed["total"].as_u64().unwrap() {
            break;
        }
    }
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|n| !stored.contains(n))
        .collect();
    assert!(
        lost.is_empty(),
        "acknowledged but lost after kill -9: {lost:?} (of {})",
        acknowledged.len()
    );
}
