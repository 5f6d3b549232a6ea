//! The whole inventory service over real loopback sockets: a tonic client against the
//! gRPC port and plain HTTP against the admin port.

use std::time::Duration;

use inventory_api::Reason;
use inventory_api::v1::inventory_service_client::InventoryServiceClient;
use inventory_api::v1::{CheckAvailabilityRequest, Item, ReleaseRequest, ReserveRequest};
use inventory_service::{Config, FaultSettings, InventoryService, audit};
use palisade_testkit::TempDir;
use tonic::Code;
use tonic::transport::Channel;

fn item(sku: &str, quantity: u32) -> Item {
    Item {
        sku: sku.to_owned(),
        quantity,
    }
}

struct Running {
    client: InventoryServiceClient<Channel>,
    admin: String,
    faults: inventory_service::FaultControl,
    db: std::path::PathBuf,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), inventory_service::Error>>,
    _dir: TempDir,
}

async fn start() -> Running {
    let dir = TempDir::new("inventory-grpc");
    let db = dir.path().join("inventory.db");
    let service = InventoryService::bind(Config::local(&db)).await.unwrap();
    let grpc = service.grpc_addr();
    let admin = service.admin_addr().to_string();
    let faults = service.faults();
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(service.serve(async move {
        let _ = rx.await;
    }));
    let channel = Channel::from_shared(format!("http://{grpc}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    Running {
        client: InventoryServiceClient::new(channel),
        admin,
        faults,
        db,
        stop,
        task,
        _dir: dir,
    }
}

#[tokio::test]
async fn oneshot_reserve_repeat_release_and_audit() {
    let mut s = start().await;
    let c = &mut s.client;

    let avail = c
        .check_availability(CheckAvailabilityRequest {
            items: vec![item("LT-0006", 5), item("KB-0001", 1)],
        })
        .await
        .unwrap()
        .into_inner();
    assert!(avail.all_available);
    assert_eq!(avail.levels[0].sku, "LT-0006");
    assert_eq!(avail.levels[0].available, 25);

    // Items arrive unsorted; the reservation stores them sorted.
    let req = ReserveRequest {
        order_id: "order-1".into(),
        items: vec![item("LT-0006", 5), item("KB-0001", 2)],
    };
    let first = c.reserve(req.clone()).await.unwrap().into_inner();
    assert!(!first.replayed);
    let r = first.reservation.unwrap();
    assert_eq!(r.items, vec![item("KB-0001", 2), item("LT-0006", 5)]);
    assert!(r.created_at.ends_with('Z'), "{}", r.created_at);

    // A repeat returns the same reservation and reserves nothing more.
    let again = c.reserve(req.clone()).await.unwrap().into_inner();
    assert!(again.replayed);
    assert_eq!(again.reservation.unwrap().reservation_id, r.reservation_id);

    // The same order id with other items is a conflict.
    let err = c
        .reserve(ReserveRequest {
            order_id: "order-1".into(),
            items: vec![item("KB-0001", 3)],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists);
    assert_eq!(Reason::of(&err), Some(Reason::Conflict));

    // Not enough stock: nothing is reserved, and the error names the SKU.
    let err = c
        .reserve(ReserveRequest {
            order_id: "order-2".into(),
            items: vec![item("KB-0001", 1), item("LT-0006", 21)],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert_eq!(Reason::of(&err), Some(Reason::InsufficientStock));
    assert_eq!(Reason::sku_of(&err), Some("LT-0006"));

    let err = c
        .reserve(ReserveRequest {
            order_id: "order-3".into(),
            items: vec![item("NOPE-1", 1)],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert_eq!(Reason::sku_of(&err), Some("NOPE-1"));

    for bad in [
        ReserveRequest {
            order_id: String::new(),
            items: vec![item("KB-0001", 1)],
        },
        ReserveRequest {
            order_id: "o".into(),
            items: vec![],
        },
        ReserveRequest {
            order_id: "o".into(),
            items: vec![item("KB-0001", 0)],
        },
        ReserveRequest {
            order_id: "o".into(),
            items: vec![item("kb", 1)],
        },
        ReserveRequest {
            order_id: "o".into(),
            items: vec![item("KB-0001", 1), item("KB-0001", 1)],
        },
        ReserveRequest {
            order_id: "x".repeat(65),
            items: vec![item("KB-0001", 1)],
        },
    ] {
        let err = c.reserve(bad.clone()).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{bad:?}: {err:?}");
    }

    let snap = audit::snapshot(&s.db).await.unwrap();
    assert!(snap.violations().is_empty(), "{:?}", snap.violations());
    assert_eq!(snap.active.len(), 1);
    let lt = snap.stock.iter().find(|l| l.sku == "LT-0006").unwrap();
    assert_eq!((lt.reserved, lt.available), (5, 20));

    // Release gives the stock back once; a second release changes nothing.
    let rel = ReleaseRequest {
        order_id: "order-1".into(),
    };
    assert!(c.release(rel.clone()).await.unwrap().into_inner().released);
    assert!(!c.release(rel).await.unwrap().into_inner().released);
    let err = c.reserve(req).await.unwrap_err();
    assert_eq!(Reason::of(&err), Some(Reason::Released));

    // Releasing an order never reserved leaves a tombstone: a late Reserve is refused.
    assert!(
        !c.release(ReleaseRequest {
            order_id: "order-9".into()
        })
        .await
        .unwrap()
        .into_inner()
        .released
    );
    let err = c
        .reserve(ReserveRequest {
            order_id: "order-9".into(),
            items: vec![item("KB-0001", 1)],
        })
        .await
        .unwrap_err();
    assert_eq!(Reason::of(&err), Some(Reason::Released));

    let snap = audit::snapshot(&s.db).await.unwrap();
    assert!(snap.violations().is_empty());
    assert!(snap.active.is_empty());
    assert!(snap.stock.iter().all(|l| l.reserved == 0));

    s.stop.send(()).unwrap();
    s.task.await.unwrap().unwrap();
}

/// The order service sends its deadline as `grpc-timeout` so that the inventory server stops
/// work nobody waits for any more (examples/README.md): a Reserve held up past its deadline
/// is answered at the deadline, its work is dropped (it reserves nothing, ever), and it does
/// not hold up a graceful shutdown. The injected latency (10 s) is never waited for: without
/// the server honouring the deadline, the answer or the shutdown would take that long, and
/// the bounded waits below fail.
#[tokio::test]
async fn a_reserve_past_its_deadline_is_answered_at_the_deadline_and_abandoned() {
    let mut s = start().await;
    s.faults
        .set(FaultSettings {
            error_rate: 0.0,
            latency_ms: 10_000,
        })
        .unwrap();
    let mut late = tonic::Request::new(ReserveRequest {
        order_id: "late-1".into(),
        items: vec![item("KB-0001", 1)],
    });
    late.set_timeout(Duration::from_millis(100));
    let sent = std::time::Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(5), s.client.reserve(late))
        .await
        .expect("the server answers at the deadline, not after the injected latency")
        .unwrap_err();
    assert!(sent.elapsed() >= Duration::from_millis(100), "{err:?}");
    // tonic's server answers an expired `grpc-timeout` with CANCELLED ("Timeout expired").
    assert_eq!(err.code(), Code::Cancelled, "{err:?}");

    // A graceful shutdown waits for calls in flight: the abandoned one is gone already.
    s.stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), s.task)
        .await
        .expect("shutdown is not held up by the abandoned Reserve")
        .unwrap()
        .unwrap();
    // The server has stopped: what is in the database now is final.
    let snap = audit::snapshot(&s.db).await.unwrap();
    assert!(snap.violations().is_empty(), "{:?}", snap.violations());
    assert!(snap.active.is_empty(), "{:?}", snap.active);
    assert!(snap.stock.iter().all(|l| l.reserved == 0));
}

#[tokio::test]
async fn faults_change_at_run_time_through_the_admin_port() {
    let mut s = start().await;
    let body = r#"{"error_rate":1.0,"latency_ms":20}"#;
    let r = http(&s.admin, "PUT", "/admin/faults", body).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert_eq!(
        s.faults.get(),
        FaultSettings {
            error_rate: 1.0,
            latency_ms: 20
        }
    );

    let start = std::time::Instant::now();
    let err = s
        .client
        .reserve(ReserveRequest {
            order_id: "f-1".into(),
            items: vec![item("KB-0001", 1)],
        })
        .await
        .unwrap_err();
    assert!(start.elapsed() >= Duration::from_millis(20));
    assert_eq!(err.code(), Code::Unavailable);
    assert_eq!(Reason::of(&err), Some(Reason::InjectedFault));
    // An injected failure has no side effect.
    assert!(audit::snapshot(&s.db).await.unwrap().active.is_empty());

    let r = http(&s.admin, "PUT", "/admin/faults", r#"{"error_rate":2}"#).await;
    assert!(
        r.starts_with("HTTP/1.1 400") && r.contains("error_rate must be from 0 to 1"),
        "{r}"
    );
    let r = http(&s.admin, "PUT", "/admin/faults", r#"{"error_rat":0}"#).await;
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");

    let r = http(&s.admin, "DELETE", "/admin/faults", "").await;
    assert!(
        r.contains(r#""error_rate":0.0"#) && r.contains(r#""injected_errors":1"#),
        "{r}"
    );
    s.client
        .reserve(ReserveRequest {
            order_id: "f-1".into(),
            items: vec![item("KB-0001", 1)],
        })
        .await
        .unwrap();
    let r = http(&s.admin, "GET", "/admin/stock", "").await;
    assert!(r.contains(r#""active_reservations":1"#), "{r}");
    s.stop.send(()).unwrap();
    s.task.await.unwrap().unwrap();
}

#[tokio::test]
async fn unwritable_database_path_is_a_clean_error() {
    let err = InventoryService::bind(Config::local("/proc/definitely/not/here.db"))
        .await
        .unwrap_err();
    let line = err.to_string();
    assert!(
        line.starts_with("cannot open database /proc/definitely/not/here.db: "),
        "{line}"
    );
    assert!(!line.contains('\n'));
}

/// A one-request HTTP/1.1 client for the admin port.
async fn http(addr: &str, method: &str, path: &str, body: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}
