//! Secret Service (gnome-keyring, KeePassXC, KWallet) over D-Bus, spoken
//! directly through zbus, the way libsecret speaks it.
//!
//! # Why by hand, and why in this order
//!
//! keygate runs once per git HTTPS operation: thousands of short-lived
//! clients a day, hundreds a minute under `fetch --all` or CI. A
//! Secret Service daemon keeps per-client state keyed by the caller's
//! unique bus name and tears it down when the bus announces, with
//! `NameOwnerChanged`, that the caller left. gnome-keyring (42 to 50)
//! aborts — taking every secret of the desktop session with it — when a
//! call of a client it has already forgotten reaches it
//! (`gkd_secret_service_get_pkcs11_session: assertion 'client' failed`,
//! then a NULL `g_variant_new`): its `OpenSession` handler ran for a
//! caller whose state was already torn down. The clients reported to set
//! it off (other Rust and Go Secret Service clients) leave with a call
//! still queued at the daemon — a deadline gave up on it, or the process
//! exited mid-handshake — or open sessions concurrently and leave them
//! for the disconnect bookkeeping to dispose. libsecret does none of
//! that. So this client, like libsecret:
//!
//! - finds the daemon's unique name first (`GetNameOwner`, activating it
//!   if needed) and talks to that name only: no call of ours can be
//!   routed to a restarted daemon that never saw our session;
//! - awaits the reply of every call before making the next one, never
//!   puts a deadline on a call to the daemon (a deadline that fires leaves
//!   the call in flight when the process then exits), and never sends
//!   fire-and-forget messages;
//! - closes its session explicitly (`Session.Close`, reply awaited) before
//!   it lets the connection go, so the daemon has nothing of ours left to
//!   dispose when it sees us disconnect;
//! - reads secrets with the service's `GetSecrets`, one call for all items.
//!
//! - first reads a property of the service, and only then opens a session
//!   (see [`introduce`]): that ordering, not the others, is what keeps
//!   gnome-keyring's client bookkeeping ahead of our `OpenSession`.
//!
//! Without the last point this client still crashed the daemon now and
//! then on a loaded machine, even with one client at a time: the race is
//! inside the daemon, between its message filter and its method dispatch,
//! and only the order of a client's first two calls avoids it. Talking
//! to the daemon less helps too: the kernel cache in front of this store
//! (src/store/keychain/kernel_cache.rs) answers a fresh token without any
//! conversation here.
//!
//! The session uses plain transport encoding, not the Diffie-Hellman one:
//! the session bus is private to this user, and any process able to watch
//! it can just as well ask the Secret Service for the item, so the key
//! exchange protects nothing here while costing about 5 ms on both ends.
//!
//! Items carry the attributes `service=keygate` and `username=<account>`,
//! the ones the keyring crates use, so `secret-tool lookup service keygate
//! username <account>` finds them.

use std::collections::HashMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use zbus::blocking::Connection;
use zbus::zvariant::{OwnedObjectPath, OwnedValue, Type, Value};

use super::Backend;
use crate::store::StoreError;

const CONTENT_TYPE: &str = "application/json";
const BUS_NAME: &str = "org.freedesktop.secrets";
const SERVICE_PATH: &str = "/org/freedesktop/secrets";
const SERVICE: &str = "org.freedesktop.Secret.Service";
const COLLECTION: &str = "org.freedesktop.Secret.Collection";
const ITEM: &str = "org.freedesktop.Secret.Item";
const SESSION: &str = "org.freedesktop.Secret.Session";
/// What the spec returns where no prompt (or no object) is needed.
const NO_OBJECT: &str = "/";

/// The spec's `Secret` struct, `(oayays)`.
#[derive(Serialize, Deserialize, Type)]
struct SecretValue {
    session: OwnedObjectPath,
    parameters: Vec<u8>,
    value: Vec<u8>,
    content_type: String,
}

/// A session bus connection that found the Secret Service's owner, but
/// has no session at it yet.
pub struct Bus {
    connection: Connection,
    owner: String,
}

impl Bus {
    /// Connects and finds the daemon: only the bus daemon is asked, so a
    /// caller may give up waiting without leaving a call at the Secret
    /// Service in flight.
    pub fn reach() -> Result<Self, StoreError> {
        Self::check()?;
        let connection = Connection::session().map_err(unreachable)?;
        let dbus = zbus::blocking::fdo::DBusProxy::new(&connection).map_err(unreachable)?;
        let name = zbus::names::BusName::try_from(BUS_NAME).map_err(unreachable)?;
        let owner = match dbus.get_name_owner(name.clone()) {
            Ok(owner) => owner,
            Err(_) => {
                // Not running: D-Bus activation starts it, as libsecret does.
                let well_known =
                    zbus::names::WellKnownName::try_from(BUS_NAME).map_err(unreachable)?;
                dbus.start_service_by_name(well_known, 0).map_err(|e| {
                    StoreError::KeychainUnreachable(format!("no Secret Service: {e}"))
                })?;
                dbus.get_name_owner(name).map_err(unreachable)?
            }
        };
        Ok(Self {
            connection,
            owner: owner.to_string(),
        })
    }

    /// Without a session bus there is no Secret Service: say so at once
    /// instead of letting zbus guess an address.
    pub fn check() -> Result<(), StoreError> {
        if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none_or(|v| v.is_empty()) {
            return Err(StoreError::NoKeychain("no D-Bus session bus".into()));
        }
        Ok(())
    }

    /// Reaches the daemon within `bound`: a session bus with no Secret
    /// Service behind it can otherwise stall for the activation timeout.
    /// Only [`Bus::reach`] runs under the bound; the session is opened
    /// afterwards with its reply awaited (see the module notes).
    pub fn reach_within(bound: Duration) -> Result<Self, StoreError> {
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = sender.send(Self::reach());
        });
        receiver
            .recv_timeout(bound)
            .unwrap_or_else(|_| Err(StoreError::KeychainUnreachable("no answer in time".into())))
    }
}

pub struct SecretServiceBackend {
    /// `None` only while being dropped.
    connection: Option<Connection>,
    owner: String,
    session: OwnedObjectPath,
}

/// Makes gnome-keyring record us as a client before any call that needs
/// that record, as libsecret's first call (`Properties.GetAll`) does.
///
/// gnome-keyring creates a client's record from a message filter that
/// runs on its D-Bus worker thread and queues the creation on the main
/// loop at high priority (`ensure_client_for_sender`, in
/// daemon/dbus/gkd-secret-service.c), while GDBus queues the method call
/// itself on the same loop at default priority. GLib's main loop orders
/// them only if both were queued before it started checking its sources:
/// when the worker queues them while the loop is inside a source's check
/// function (its lock released), the high-priority creation lands behind
/// the loop's cursor and the method call after it, so `OpenSession` runs
/// first, finds no client, and the daemon aborts with
/// `gkd_secret_service_get_pkcs11_session: assertion 'client' failed`.
/// A short-lived client whose first message is `OpenSession` meets that
/// window now and then; under load, a few runs in a hundred of 2,000
/// gets here. A property read answered by the main loop closes it: by the
/// time its reply reaches us, the creation queued before it has either
/// run or waits at high priority ahead of anything we send next.
fn introduce(connection: &Connection, owner: &str) -> Result<(), StoreError> {
    connection
        .call_method(
            Some(owner),
            SERVICE_PATH,
            Some("org.freedesktop.DBus.Properties"),
            "Get",
            &(SERVICE, "Collections"),
        )
        .map_err(describe)?;
    Ok(())
}

impl SecretServiceBackend {
    pub fn connect() -> Result<Self, StoreError> {
        Self::open_session(Bus::reach()?)
    }

    pub fn open_session(bus: Bus) -> Result<Self, StoreError> {
        let Bus { connection, owner } = bus;
        introduce(&connection, &owner)?;
        let reply = connection
            .call_method(
                Some(owner.as_str()),
                SERVICE_PATH,
                Some(SERVICE),
                "OpenSession",
                &("plain", Value::from("")),
            )
            .map_err(describe)?;
        let (_output, session): (OwnedValue, OwnedObjectPath) =
            reply.body().deserialize().map_err(describe)?;
        Ok(Self {
            connection: Some(connection),
            owner,
            session,
        })
    }

    fn call<B, R>(
        &self,
        path: &str,
        interface: &str,
        method: &str,
        body: &B,
    ) -> Result<R, StoreError>
    where
        B: Serialize + zbus::zvariant::DynamicType,
        R: for<'d> Deserialize<'d> + Type,
    {
        let connection = self
            .connection
            .as_ref()
            .ok_or_else(|| StoreError::Keychain("the keychain conversation ended".into()))?;
        let reply = connection
            .call_method(
                Some(self.owner.as_str()),
                path,
                Some(interface),
                method,
                body,
            )
            .map_err(describe)?;
        reply.body().deserialize().map_err(describe)
    }

    /// Unlocked items matching `attributes`; a match that is locked is an
    /// error, since unlocking may need a person.
    fn find(&self, attributes: HashMap<&str, &str>) -> Result<Vec<OwnedObjectPath>, StoreError> {
        let (unlocked, locked): (Vec<OwnedObjectPath>, Vec<OwnedObjectPath>) =
            self.call(SERVICE_PATH, SERVICE, "SearchItems", &(attributes,))?;
        if unlocked.is_empty() && !locked.is_empty() {
            return Err(StoreError::KeychainLocked(
                "the keyring holding keygate's entries is locked".into(),
            ));
        }
        Ok(unlocked)
    }

    /// The secrets of `items`, in their order.
    fn secrets(&self, items: &[OwnedObjectPath]) -> Result<Vec<Vec<u8>>, StoreError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let mut found: HashMap<OwnedObjectPath, SecretValue> =
            self.call(SERVICE_PATH, SERVICE, "GetSecrets", &(items, &self.session))?;
        items
            .iter()
            .map(|item| {
                found
                    .remove(item)
                    .map(|secret| secret.value)
                    .ok_or_else(|| {
                        StoreError::KeychainLocked("the Secret Service withheld an item".into())
                    })
            })
            .collect()
    }

    /// A prompt means a person must act (unlock, confirm): never here.
    fn no_prompt(prompt: &OwnedObjectPath) -> Result<(), StoreError> {
        if prompt.as_str() == NO_OBJECT {
            Ok(())
        } else {
            Err(StoreError::KeychainLocked(
                "the keyring asks for a person to confirm".into(),
            ))
        }
    }
}

impl Drop for SecretServiceBackend {
    fn drop(&mut self) {
        let Some(connection) = self.connection.take() else {
            return;
        };
        // Awaited, so the connection goes only after the daemon has let go
        // of our session (see the module notes).
        let _ = connection.call_method(
            Some(self.owner.as_str()),
            self.session.as_str(),
            Some(SESSION),
            "Close",
            &(),
        );
        let _ = connection.close();
    }
}

impl Backend for SecretServiceBackend {
    fn get(&self, service: &str, label: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let items = self.find(HashMap::from([("service", service), ("username", label)]))?;
        let Some(first) = items.into_iter().next() else {
            return Ok(None);
        };
        Ok(self.secrets(&[first])?.into_iter().next())
    }

    fn set(&self, service: &str, label: &str, secret: &[u8]) -> Result<(), StoreError> {
        let collection: OwnedObjectPath =
            self.call(SERVICE_PATH, SERVICE, "ReadAlias", &("default",))?;
        if collection.as_str() == NO_OBJECT {
            return Err(StoreError::Keychain(
                "the Secret Service has no default keyring; create one (for example with seahorse)"
                    .into(),
            ));
        }
        let locked: OwnedValue = self.call(
            collection.as_str(),
            "org.freedesktop.DBus.Properties",
            "Get",
            &(COLLECTION, "Locked"),
        )?;
        if locked.downcast_ref::<bool>().unwrap_or(true) {
            return Err(StoreError::KeychainLocked(
                "the default keyring is locked".into(),
            ));
        }
        let attributes = HashMap::from([("service", service), ("username", label)]);
        let properties: HashMap<&str, Value<'_>> = HashMap::from([
            (
                "org.freedesktop.Secret.Item.Label",
                Value::from(format!("{service}: {label}")),
            ),
            (
                "org.freedesktop.Secret.Item.Attributes",
                Value::from(attributes),
            ),
        ]);
        let value = SecretValue {
            session: self.session.clone(),
            parameters: Vec::new(),
            value: secret.to_vec(),
            content_type: CONTENT_TYPE.to_owned(),
        };
        let (_item, prompt): (OwnedObjectPath, OwnedObjectPath) = self.call(
            collection.as_str(),
            COLLECTION,
            "CreateItem",
            &(properties, value, true),
        )?;
        Self::no_prompt(&prompt)
    }

    fn delete(&self, service: &str, label: &str) -> Result<bool, StoreError> {
        let items = self.find(HashMap::from([("service", service), ("username", label)]))?;
        for item in &items {
            let prompt: OwnedObjectPath = self.call(item.as_str(), ITEM, "Delete", &())?;
            Self::no_prompt(&prompt)?;
        }
        Ok(!items.is_empty())
    }

    fn all(&self, service: &str) -> Result<Vec<Vec<u8>>, StoreError> {
        let items = self.find(HashMap::from([("service", service)]))?;
        self.secrets(&items)
    }
}

fn unreachable(error: impl std::fmt::Display) -> StoreError {
    StoreError::KeychainUnreachable(error.to_string())
}

/// Our error for zbus's; D-Bus error replies carry the daemon's message,
/// never secret bytes.
fn describe(error: zbus::Error) -> StoreError {
    match &error {
        zbus::Error::MethodError(name, _, _) if name.as_str().ends_with(".IsLocked") => {
            StoreError::KeychainLocked(error.to_string())
        }
        zbus::Error::MethodError(..) | zbus::Error::FDO(_) => {
            StoreError::Keychain(error.to_string())
        }
        _ => StoreError::KeychainUnreachable(error.to_string()),
    }
}
