//! `INVENTORY_REUSE_PORT=true` (`Config::reuse_port`): a second instance binds the same
//! gRPC and admin addresses while the first still holds them (a rolling restart on one
//! host); without it the second bind fails with a clean error. The whole rolling restart
//! under load is exercised by `examples/soak`.

#![cfg(all(
    unix,
    not(target_os = "solaris"),
    not(target_os = "illumos"),
    not(target_os = "cygwin")
))]

use inventory_service::{Config, Error, InventoryService};
use palisade_testkit::TempDir;

#[tokio::test]
async fn with_reuse_port_a_second_instance_binds_the_same_addresses() {
    let dir = TempDir::new("inventory-reuse-port");
    let db = dir.path().join("inventory.db");
    let mut config = Config::local(&db);
    config.reuse_port = true;
    let first = InventoryService::bind(config.clone()).await.unwrap();
    config.grpc_addr = first.grpc_addr();
    config.admin_addr = first.admin_addr();

    let second = InventoryService::bind(config.clone()).await.unwrap();
    assert_eq!(second.grpc_addr(), first.grpc_addr());
    assert_eq!(second.admin_addr(), first.admin_addr());

    // Without the option the address is taken: a clean `Bind` error naming it.
    config.reuse_port = false;
    match InventoryService::bind(config).await {
        Err(Error::Bind { addr, .. }) => assert_eq!(addr, first.grpc_addr()),
        other => panic!("expected a bind error, got {other:?}"),
    }
}
