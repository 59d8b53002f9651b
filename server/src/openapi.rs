//! The OpenAPI 3.1 description of the API, served at `/openapi.json`: the
//! paths come from the handlers' `#[utoipa::path]` annotations as the router
//! mounts them (see `router.rs`), the bodies from the wire types' schemas.

use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

/// The document's frame: title, version and the device-token scheme.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Pieper sync server",
        description = "Accounts, devices and the delivery of end-to-end encrypted envelopes \
                       for a GP practice. The server sees ciphertext only."
    ),
    modifiers(&DeviceToken)
)]
pub struct ApiDoc;

/// A device's bearer token, from login.
struct DeviceToken;

impl Modify for DeviceToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "deviceToken",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}
