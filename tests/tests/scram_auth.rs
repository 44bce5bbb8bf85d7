//! SCRAM-SHA-256 password login through pgvisor, and the same 28P01 error as direct for a wrong
//! password or an unknown role.

use pgvisor_tests::{connect, shared_cluster, sqlstate, start_proxy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_login_works_through_the_proxy() {
    let cluster = shared_cluster();
    let proxy = start_proxy(cluster).await;
    let direct = connect(&cluster.endpoint()).await.unwrap();
    // The server really demands SCRAM over TCP and stores a SCRAM verifier.
    let method: String = direct
        .query_one("select auth_method from pg_hba_file_rules where type = 'host' and address = '127.0.0.1' and database = '{all}'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(method, "scram-sha-256");
    let verifier: String =
        direct.query_one("select rolpassword from pg_authid where rolname = current_user", &[]).await.unwrap().get(0);
    assert!(verifier.starts_with("SCRAM-SHA-256$"), "{verifier}");

    let proxied = connect(&proxy.endpoint()).await.expect("SCRAM login through the proxy");
    let row = proxied.query_one("select current_user::text, session_user::text", &[]).await.unwrap();
    assert_eq!((row.get::<_, &str>(0), row.get::<_, &str>(1)), ("postgres", "postgres"));

    // A second role with its own password.
    direct
        .batch_execute("drop role if exists app_user; create role app_user login password 'app secret'")
        .await
        .unwrap();
    let app = proxy.endpoint().with_password("app secret");
    let app = pgvisor_tests::Endpoint { user: "app_user".into(), ..app };
    let client = connect(&app).await.expect("app_user logs in through the proxy");
    let user: String = client.query_one("select current_user::text", &[]).await.unwrap().get(0);
    assert_eq!(user, "app_user");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_gives_28p01_like_direct() {
    let cluster = shared_cluster();
    let proxy = start_proxy(cluster).await;
    let direct_err = connect(&cluster.endpoint().with_password("wrong")).await.expect_err("direct login must fail");
    let proxied_err = connect(&proxy.endpoint().with_password("wrong")).await.expect_err("proxied login must fail");
    assert_eq!(sqlstate(&proxied_err), Some("28P01"), "{proxied_err}");
    assert_eq!(proxied_err.to_string(), direct_err.to_string());

    let nobody = pgvisor_tests::Endpoint { user: "nobody_here".into(), ..proxy.endpoint() };
    let err = connect(&nobody).await.expect_err("unknown role must fail");
    assert_eq!(sqlstate(&err), Some("28P01"), "{err}");

    // Failed logins leave the proxy serving.
    let ok = connect(&proxy.endpoint()).await.expect("a correct login after failed ones");
    ok.simple_query("select 1").await.unwrap();
    assert_eq!(proxy.counter(|s| &s.client_protocol_errors), 0);
}
