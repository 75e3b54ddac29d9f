//! The drivers of the flows beyond a single token request, written once for both adapters:
//! the device authorization grant (RFC 8628), pushed authorization requests (RFC 9126) and
//! client registration (RFC 7591, RFC 7592).

use std::time::Instant;

use oauth_core::{
    Client, ClientMetadata, DeviceAuthorization, DeviceAuthorizationRequest, DevicePoll,
    DeviceStep, Endpoint, Error, RegisteredClient, RegistrationRequest, TokenResponse,
    TransportError, TransportErrorKind, parse_device_authorization_response,
    parse_registration_delete_response, parse_registration_response, parse_registration_update,
};

use crate::drive::{Io, exchange, request_token};
use crate::now;

/// Asks the device authorization endpoint for a device code and a user code (RFC 8628 §3.1).
pub async fn device_authorization<I: Io>(
    io: &I,
    endpoint: &Endpoint,
    client: &Client,
    request: &DeviceAuthorizationRequest,
) -> Result<DeviceAuthorization, Error> {
    crate::drive::check_identity(io.config(), client)?;
    let built = request.build_at(endpoint, client, now().wall())?;
    exchange(io, built, |r| parse_device_authorization_response(r, now())).await
}

/// The whole device flow: the device authorization request, `prompt` called once with the
/// user code and URI to show, then the token endpoint polled as oauth-core's `DevicePoll`
/// decides until the user approves, declines, or the code expires — or `deadline` passes
/// (a timeout error). Each poll is a token call with its own retries.
pub async fn device_flow<I: Io>(
    io: &I,
    device_endpoint: &Endpoint,
    token_endpoint: &Endpoint,
    client: &Client,
    request: &DeviceAuthorizationRequest,
    prompt: impl FnOnce(&DeviceAuthorization),
    deadline: Option<Instant>,
) -> Result<TokenResponse, Error> {
    let authorization = device_authorization(io, device_endpoint, client, request).await?;
    prompt(&authorization);
    let mut machine = DevicePoll::new(&authorization, now());
    let mut step = machine.poll(now());
    loop {
        step = match step {
            DeviceStep::Wait(until) => {
                if let Some(deadline) = deadline.filter(|d| until >= *d) {
                    io.sleep_until(deadline).await;
                    return Err(TransportError::new(
                        TransportErrorKind::Timeout,
                        "the device flow's deadline passed before the user approved",
                    )
                    .into());
                }
                io.sleep_until(until).await;
                machine.poll(now())
            }
            DeviceStep::Send(token_request) => {
                tracing::debug!(poll = machine.polls(), "device flow: polling");
                let result = request_token(io, token_endpoint, client, &token_request).await;
                machine.handle_response(result, now())
            }
            DeviceStep::Done(result) => return result,
            _ => {
                return Err(crate::internal_error(
                    "device_flow met a DeviceStep it does not know",
                ));
            }
        };
    }
}

/// Pushes an authorization request (RFC 9126): every parameter of `pending`'s URL, with the
/// client's authentication, to `par_endpoint`; returns the authorization whose URL carries
/// only `client_id` and the `request_uri` the server gave. The state, nonce and verifier for
/// the callback are unchanged.
#[cfg(feature = "authorization-code")]
pub async fn push_authorization<I: Io>(
    io: &I,
    par_endpoint: &Endpoint,
    client: &Client,
    pending: &oauth_core::PendingAuthorization,
) -> Result<oauth_core::PendingAuthorization, Error> {
    crate::drive::check_identity(io.config(), client)?;
    let request = pending.push_request(par_endpoint, client, now().wall())?;
    exchange(io, request, |r| pending.pushed(r)).await
}

/// Registers a client (RFC 7591).
pub async fn register_client<I: Io>(
    io: &I,
    endpoint: &Endpoint,
    request: &RegistrationRequest,
) -> Result<RegisteredClient, Error> {
    let policy = io.config().scheme_policy;
    exchange(io, request.build(endpoint)?, |r| {
        parse_registration_response(r, policy)
    })
    .await
}

/// Reads a registration (RFC 7592 §2.1).
pub async fn read_client_registration<I: Io>(
    io: &I,
    client: &RegisteredClient,
) -> Result<RegisteredClient, Error> {
    let policy = io.config().scheme_policy;
    exchange(io, client.read_request()?, |r| {
        parse_registration_update(r, policy, client)
    })
    .await
}

/// Replaces a registration's metadata (RFC 7592 §2.2).
pub async fn update_client_registration<I: Io>(
    io: &I,
    client: &RegisteredClient,
    metadata: &ClientMetadata,
) -> Result<RegisteredClient, Error> {
    let policy = io.config().scheme_policy;
    exchange(io, client.update_request(metadata)?, |r| {
        parse_registration_update(r, policy, client)
    })
    .await
}

/// Deletes a registration (RFC 7592 §2.3).
pub async fn delete_client_registration<I: Io>(
    io: &I,
    client: &RegisteredClient,
) -> Result<(), Error> {
    exchange(
        io,
        client.delete_request()?,
        parse_registration_delete_response,
    )
    .await
}
