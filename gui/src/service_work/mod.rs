//! The Card services requests (what the workspace in `services` asks) as the worker thread
//! runs them: every one goes to the station's
//! own service function (which checks the clerk role itself and audits), its progress comes
//! back as step names, its outcome as plain words in the operator's language.

use station::error::StationError;
use station::operators::Session;
use station::services::identify::Service;
use station::services::{ResumeInput, ServiceProgress, ServiceStep, UnblockInput};
use station::Station;

pub mod explain;

use std::path::PathBuf;

use station::holder::AddressRecord;
use station::services::identify::CardIdentity;
use zeroize::Zeroizing;

use crate::i18n::{self, tr_args, Lang};
pub use explain::ServiceFailure;
use explain::{explain, explain_service};

/// What the workspace asks the worker.
pub enum Request {
    /// Read the card in the reader and match it to the registry.
    Identify {
        reader: Option<String>,
    },
    Act(Action),
}

/// A service for the card on screen. Secrets travel in zeroizing buffers.
pub enum Action {
    Renew {
        document: String,
        reader: Option<String>,
        pin: Zeroizing<String>,
    },
    Unblock {
        document: String,
        reader: Option<String>,
        pin: Zeroizing<String>,
        identity_confirmed: bool,
        new_puk_letter: Option<PathBuf>,
    },
    Suspend {
        document: String,
    },
    Resume {
        document: String,
        identity_confirmed: bool,
    },
    CardReturned {
        document: String,
    },
    AddressSet {
        pinfl: String,
        address: AddressRecord,
    },
    AddressEnd {
        pinfl: String,
        ended_on: Option<String>,
    },
}

/// What comes back.
pub enum Reply {
    Identified(Result<Box<CardIdentity>, ServiceFailure>),
    /// The catalogue id of the step being begun.
    Step(&'static str),
    Done {
        service: Service,
        result: Result<String, ServiceFailure>,
    },
}

/// The catalogue id of the words for a service step.
pub fn step_id(step: ServiceStep) -> &'static str {
    match step {
        ServiceStep::CardGenerate => "svc-step-card-generate",
        ServiceStep::CaIssue => "svc-step-ca-issue",
        ServiceStep::CardInstall => "svc-step-card-install",
        ServiceStep::RegistryComplete => "svc-step-registry-complete",
        ServiceStep::CardUnblock => "svc-step-card-unblock",
    }
}

/// Run `req` for `session` on the worker thread; replies go to `send`.
pub fn run(st: &mut Station, session: &Session, lang: Lang, req: Request, send: &dyn Fn(Reply)) {
    let action = match req {
        Request::Identify { reader } => {
            let r = station::services::identify(st, session, reader.as_deref())
                .map(Box::new)
                .map_err(|e| explain(lang, &e));
            send(Reply::Identified(r));
            return;
        }
        Request::Act(action) => action,
    };
    let mut progress = |p: &ServiceProgress| send(Reply::Step(step_id(p.step)));
    let (service, result) = perform(st, session, lang, action, &mut progress);
    send(Reply::Done {
        service,
        result: result.map_err(|e| explain_service(lang, service, &e)),
    });
}

/// The service `action` asks for; its outcome in words.
fn perform(
    st: &mut Station,
    session: &Session,
    lang: Lang,
    action: Action,
    progress: &mut dyn FnMut(&ServiceProgress),
) -> (Service, Result<String, StationError>) {
    let a = |k: &'static str, v: String| (k, i18n::s(v));
    match action {
        Action::Renew {
            document,
            reader,
            pin,
        } => {
            let input = station::services::RenewInput {
                document,
                reader,
                pin,
            };
            let r = station::services::renew(st, session, &input, progress).map(|r| {
                let serials: Vec<String> =
                    r.certificates.iter().map(|c| c.serial.clone()).collect();
                tr_args(lang, "svc-done-renew", &[a("serials", serials.join(", "))])
            });
            (Service::Renew, r)
        }
        Action::Unblock {
            document,
            reader,
            pin,
            identity_confirmed,
            new_puk_letter,
        } => {
            let input = UnblockInput {
                document,
                reader,
                identity_confirmed,
                new_pin: pin,
                new_puk_letter,
            };
            let r = station::services::unblock(st, session, &input, progress).map(|r| {
                match r.pin_letter {
                    Some(p) => tr_args(
                        lang,
                        "svc-done-unblock-puk",
                        &[a("path", p.display().to_string())],
                    ),
                    None => tr_args(lang, "svc-done-unblock", &[]),
                }
            });
            (Service::Unblock, r)
        }
        Action::Suspend { document } => {
            let r = station::services::suspend(st, session, &document).map(|r| {
                tr_args(
                    lang,
                    "svc-done-suspend",
                    &[
                        a("number", r.document),
                        a("until", i18n::date(&r.resume_until)),
                    ],
                )
            });
            (Service::Suspend, r)
        }
        Action::Resume {
            document,
            identity_confirmed,
        } => {
            let input = ResumeInput {
                document,
                identity_confirmed,
            };
            let r = station::services::resume(st, session, &input)
                .map(|r| tr_args(lang, "svc-done-resume", &[a("number", r.document)]));
            (Service::Resume, r)
        }
        Action::CardReturned { document } => {
            let r = station::services::card_returned(st, session, &document)
                .map(|r| tr_args(lang, "svc-done-returned", &[a("serial", r.card_serial)]));
            (Service::CardReturned, r)
        }
        Action::AddressSet { pinfl, address } => {
            let r = station::services::identify::address_from_record(&address)
                .and_then(|new| station::services::address::set(st, session, &pinfl, &new))
                .map(|_| tr_args(lang, "svc-done-address-set", &[]));
            (Service::AddressSet, r)
        }
        Action::AddressEnd { pinfl, ended_on } => {
            let r = station::services::address::end(
                st,
                session,
                &pinfl,
                "temporary",
                ended_on.as_deref(),
            )
            .map(|_| tr_args(lang, "svc-done-address-end", &[]));
            (Service::AddressEnd, r)
        }
    }
}
