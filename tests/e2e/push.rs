//! Push-token registration from the core to the real server.

use pieper_core::{ApnsEnvironment, Error, PushProvider, PushToken};
use pieper_e2e::{Backend, Server, TestDatabase, TestResult, create_user, sign_in};

fn apns(token: &str) -> PushToken {
    PushToken {
        provider: PushProvider::Apns,
        token: token.into(),
        apns_environment: Some(ApnsEnvironment::Sandbox),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_registered_rotated_and_kept_while_offline() -> TestResult {
    let db = TestDatabase::new(Backend::Sqlite).await?;
    let huisarts = create_user(&db, "linde", "jansen", "huisarts")?;
    let mut server = Server::start(&db, &[])?;
    let phone = sign_in(&server, &huisarts, "iphone").await?;

    phone.register_push_token(apns("a1b2c3")).await?;
    assert_eq!(phone.push_token()?, Some((apns("a1b2c3"), true)));

    // Bad input is refused before it leaves the device.
    let without_environment = PushToken {
        apns_environment: None,
        ..apns("d4e5")
    };
    assert!(matches!(
        phone.register_push_token(without_environment).await,
        Err(Error::Invalid {
            field: "apns_environment",
            ..
        })
    ));
    assert_eq!(phone.push_token()?, Some((apns("a1b2c3"), true)));

    // The OS rotates the token while the server is down: it is kept, and
    // registered at the first sync once the server is back.
    let address = server.base.trim_start_matches("http://").to_owned();
    server.kill();
    phone.register_push_token(apns("f6a7b8")).await?;
    assert_eq!(phone.push_token()?, Some((apns("f6a7b8"), false)));
    let _server = Server::start_at(&db, &address, &[])?;
    phone.sync().await?;
    assert_eq!(phone.push_token()?, Some((apns("f6a7b8"), true)));

    // After a restart of the app it is still known.
    let phone = phone.reopen().await?;
    assert_eq!(phone.push_token()?, Some((apns("f6a7b8"), true)));
    phone.remove_push_token().await?;
    assert_eq!(phone.push_token()?, None);
    Ok(())
}
