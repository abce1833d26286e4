//! Drawing the Card services workspace: the reader on the left; on the right the card read
//! (holder, document, card, certificates, addresses), the services with what each does or why
//! it does not apply now, the running service's steps and the last outcome. Columns have fixed
//! widths and long values are cut with an ellipsis (the full text on hover), so nothing widens
//! the screen at 1024×768.

use egui::{Align, Color32, Layout, RichText};
use station::services::identify::{CardIdentity, National, PinState, Service};

use super::dialogs::{AddressDraft, Dialog};
use super::{status_word, Plan, ServicesState};
use crate::i18n::{self, t, ta, Lang};
use crate::readers::ReaderSnapshot;
use crate::service_work::explain::{blocker, ServiceFailure};
use crate::worker::Command;

const GREEN: Color32 = Color32::from_rgb(0, 140, 60);
const ROW: f32 = 20.0;

/// Draw the workspace.
pub fn ui(
    ui: &mut egui::Ui,
    st: &mut ServicesState,
    readers: Option<&ReaderSnapshot>,
    default_reader: Option<&str>,
    cmds: &mut Vec<Command>,
) {
    if st.reader.is_none() {
        st.reader = default_reader.map(str::to_owned);
    }
    watch_reader(st, readers, cmds);
    if std::mem::take(&mut st.refresh) && !st.busy() {
        st.identify(cmds);
    }
    egui::Panel::left("svc-side")
        .default_size(260.0)
        .resizable(false)
        .show(ui, |ui| reader_panel(ui, st, readers, cmds));
    egui::CentralPanel::default_margins().show(ui, |ui| {
        egui::ScrollArea::vertical()
            .id_salt("svc-main")
            .auto_shrink([false, false])
            .show(ui, |ui| main(ui, st, cmds));
    });
    super::dialogs::show(ui.ctx(), st, cmds);
    st.pin_ui(ui.ctx(), cmds);
}

/// A card put into the chosen reader is read at once; one taken out leaves nothing of its
/// holder on screen.
fn watch_reader(st: &mut ServicesState, readers: Option<&ReaderSnapshot>, cmds: &mut Vec<Command>) {
    let Some(snap) = readers else { return };
    if st.busy() {
        return;
    }
    let row = snap.rows.iter().find(|r| match &st.reader {
        Some(name) => r.reader.contains(name.as_str()),
        None => r.card_present,
    });
    let present = row.is_some_and(|r| r.card_present);
    if present && !st.card_was_present {
        st.identify(cmds);
    }
    if !present && st.card_was_present && snap.polled {
        st.identity = None;
        st.done = None;
        st.action_failure = None;
        st.dialog = None;
        st.pin.close();
    }
    st.card_was_present = present;
}

fn reader_panel(
    ui: &mut egui::Ui,
    st: &mut ServicesState,
    readers: Option<&ReaderSnapshot>,
    cmds: &mut Vec<Command>,
) {
    ui.heading(t(ui, "svc-reader-heading"));
    let any = t(ui, "svc-reader-any");
    let shown = st.reader.clone().unwrap_or_else(|| any.clone());
    let names: Vec<String> = readers
        .map(|r| r.rows.iter().map(|row| row.reader.clone()).collect())
        .unwrap_or_default();
    let l = ui.label(t(ui, "svc-reader"));
    egui::ComboBox::from_id_salt("svc-reader-choice")
        .width(230.0)
        .truncate()
        .selected_text(shown)
        .show_ui(ui, |ui| {
            // The list closes once an entry is taken, from the keyboard too.
            let mut taken = ui
                .selectable_value(&mut st.reader, None, any.clone())
                .clicked();
            for n in names {
                taken |= ui
                    .selectable_value(&mut st.reader, Some(n.clone()), n)
                    .clicked();
            }
            if taken {
                ui.close();
            }
        })
        .response
        .labelled_by(l.id);
    if let Some(snap) = readers {
        for row in &snap.rows {
            let color = if row.card_present {
                GREEN
            } else {
                Color32::GRAY
            };
            let state = if row.card_present {
                t(ui, "svc-reader-card")
            } else {
                t(ui, "reader-no-card")
            };
            ui.add(
                egui::Label::new(RichText::new(format!("{}: {state}", row.reader)).color(color))
                    .wrap(),
            );
        }
    }
    ui.add_space(8.0);
    let read = ui.add_enabled(!st.busy(), egui::Button::new(t(ui, "svc-read-card")));
    if read.clicked() {
        st.done = None;
        st.action_failure = None;
        st.identify(cmds);
    }
    if st.identify_pending {
        ui.horizontal(|ui| {
            ui.spinner();
            ui.label(t(ui, "svc-reading"));
        });
    }
    ui.add_space(8.0);
    ui.add(egui::Label::new(RichText::new(t(ui, "svc-intro")).weak()).wrap());
}

fn main(ui: &mut egui::Ui, st: &mut ServicesState, cmds: &mut Vec<Command>) {
    let lang = i18n::current(ui.ctx());
    if let Some(f) = st.read_failure.clone() {
        let retry = failure_box(ui, &t(ui, "svc-read-failed"), &f);
        if retry && !st.busy() {
            st.identify(cmds);
        }
    }
    if let Some(r) = &st.running {
        running(ui, r);
    }
    if let Some(msg) = &st.done {
        ui.colored_label(GREEN, RichText::new(format!("✔ {msg}")).strong());
        ui.add_space(6.0);
    }
    if let Some((plan, f)) = st.action_failure.clone() {
        let title = ta(
            ui,
            "svc-action-failed",
            &[("service", i18n::s(service_name(lang, plan.service())))],
        );
        if failure_box(ui, &title, &f) && !st.busy() {
            st.go(plan, cmds);
        }
    }
    let Some(id) = st.identity.clone() else {
        if st.read_failure.is_none() && !st.identify_pending {
            ui.label(t(ui, "svc-insert-card"));
        }
        return;
    };
    if identity(ui, &id) {
        use crate::clerk::lookup::Find;
        st.replace = Some(match id.issued_elsewhere {
            None => Find::Holder(id.holder.pinfl.clone()),
            Some(_) => Find::Document(id.document.number.clone()),
        });
    }
    ui.add_space(10.0);
    offers(ui, st, &id);
}

/// A failure: what happened, what to do, the station's words under Details; true when Retry
/// was pressed (offered only when repeating can succeed).
fn failure_box(ui: &mut egui::Ui, title: &str, f: &ServiceFailure) -> bool {
    let mut retry = false;
    egui::Frame::group(ui.style()).show(ui, |ui| {
        ui.set_width(ui.available_width());
        ui.colored_label(Color32::RED, RichText::new(title).strong());
        ui.add(egui::Label::new(f.message.as_str()).wrap());
        ui.add(egui::Label::new(RichText::new(f.next.as_str()).strong()).wrap());
        if f.retry {
            retry = ui.button(t(ui, "issue-retry")).clicked();
        }
        egui::CollapsingHeader::new(t(ui, "svc-details"))
            .id_salt(("svc-details", title))
            .show(ui, |ui| {
                ui.add(egui::Label::new(RichText::new(f.details.as_str()).monospace()).wrap());
            });
    });
    ui.add_space(6.0);
    retry
}

/// The steps of the service at work.
fn running(ui: &mut egui::Ui, r: &super::Running) {
    let lang = i18n::current(ui.ctx());
    ui.horizontal(|ui| {
        ui.spinner();
        ui.label(
            RichText::new(ta(
                ui,
                "svc-running",
                &[("service", i18n::s(service_name(lang, r.service)))],
            ))
            .strong(),
        );
    });
    let n = r.steps.len();
    for (i, id) in r.steps.iter().enumerate() {
        let words = t(ui, id);
        if i + 1 == n {
            ui.label(
                RichText::new(format!("▶ {words}"))
                    .strong()
                    .color(Color32::from_rgb(0, 90, 200)),
            );
        } else {
            ui.label(RichText::new(format!("✔ {words}")).color(GREEN));
        }
    }
    ui.add_space(6.0);
}

/// A cell of fixed width; a longer text is cut with an ellipsis.
fn cell(ui: &mut egui::Ui, width: f32, text: impl Into<egui::WidgetText>) {
    ui.allocate_ui_with_layout(
        egui::vec2(width, ROW),
        Layout::left_to_right(Align::Center),
        |ui| {
            ui.set_width(width);
            ui.add(egui::Label::new(text).truncate());
        },
    );
}

/// One labelled value on a line: label column fixed.
fn field(ui: &mut egui::Ui, label: &str, value: &str) {
    ui.horizontal(|ui| {
        cell(ui, 170.0, RichText::new(label).weak());
        cell(ui, 420.0, value);
    });
}

/// What the national centre says of the card beyond the record shown (an enrolled station):
/// a replacement flag, a state another office changed, or that the centre could not be asked.
/// True when the clerk chose to replace a flagged card.
fn national(ui: &mut egui::Ui, id: &CardIdentity) -> bool {
    const ORANGE: Color32 = Color32::from_rgb(200, 120, 0);
    let lang = i18n::current(ui.ctx());
    let mut replace = false;
    if let Some(due) = id.replacement_due() {
        egui::Frame::group(ui.style()).show(ui, |ui| {
            ui.set_width(ui.available_width());
            let date = i18n::date(due.flagged_at.get(..10).unwrap_or(&due.flagged_at));
            let text = ta(ui, "svc-replacement-due", &[("date", i18n::s(date))]);
            ui.add(egui::Label::new(RichText::new(text).strong().color(ORANGE)).wrap());
            let why = ta(
                ui,
                "svc-replacement-reason",
                &[("reason", i18n::s(due.reason.clone()))],
            );
            ui.add(egui::Label::new(why).wrap());
            // Replaced under Issuance: a card of this station's from its holder's record,
            // another office's through the national centre.
            replace = ui.button(t(ui, "svc-replacement-go")).clicked();
        });
    }
    if let Some(state) = id.national_state_differs() {
        let text = ta(
            ui,
            "svc-national-state",
            &[("state", i18n::s(status_word(lang, state)))],
        );
        ui.add(egui::Label::new(RichText::new(text).strong().color(ORANGE)).wrap());
    }
    if let Some(National::Unanswered(why)) = &id.national {
        ui.add(egui::Label::new(t(ui, "svc-national-unanswered")).wrap());
        egui::CollapsingHeader::new(t(ui, "svc-details"))
            .id_salt("svc-national-details")
            .show(ui, |ui| {
                ui.add(egui::Label::new(RichText::new(why.as_str()).monospace()).wrap());
            });
    }
    replace
}

/// Holder, document, card, certificates, addresses; true when the clerk chose to replace a
/// flagged card.
fn identity(ui: &mut egui::Ui, id: &CardIdentity) -> bool {
    let lang = i18n::current(ui.ctx());
    let h = &id.holder;
    ui.heading(t(ui, "svc-holder"));
    let join = |parts: [Option<&str>; 3]| parts.into_iter().flatten().collect::<Vec<_>>().join(" ");
    field(
        ui,
        &t(ui, "svc-name"),
        &join([
            Some(h.surname.as_str()),
            Some(h.given_names.as_str()),
            h.patronymic.as_deref(),
        ]),
    );
    if h.surname_cyrillic.is_some() {
        let c = join([
            h.surname_cyrillic.as_deref(),
            h.given_names_cyrillic.as_deref(),
            h.patronymic_cyrillic.as_deref(),
        ]);
        field(ui, &t(ui, "svc-name-cyrillic"), &c);
    }
    crate::clerk::copyable(ui, t(ui, "field-pinfl"), &h.pinfl);
    field(
        ui,
        &t(ui, "field-date-of-birth"),
        &i18n::date(&h.date_of_birth),
    );

    ui.add_space(6.0);
    ui.heading(t(ui, "svc-document"));
    if let Some(office) = &id.issued_elsewhere {
        let text = ta(
            ui,
            "svc-issued-elsewhere",
            &[("office", i18n::s(office.clone()))],
        );
        ui.add(egui::Label::new(RichText::new(text).strong()).wrap());
    }
    crate::clerk::copyable(ui, t(ui, "lookup-document"), &id.document.number);
    let status = status_word(lang, &id.document.status);
    let status_text = RichText::new(&status)
        .strong()
        .color(if id.document.status == "active" {
            GREEN
        } else {
            Color32::from_rgb(200, 120, 0)
        });
    ui.horizontal(|ui| {
        cell(ui, 170.0, RichText::new(t(ui, "svc-status")).weak());
        cell(ui, 420.0, status_text);
    });
    field(
        ui,
        &t(ui, "svc-issued-on"),
        &i18n::date(&id.document.date_of_issue),
    );
    field(
        ui,
        &t(ui, "svc-expires-on"),
        &i18n::date(&id.document.date_of_expiry),
    );
    if let (Some(since), Some(until)) = (&id.suspended_since, &id.resume_until) {
        let text = ta(
            ui,
            "svc-suspended-since",
            &[
                ("since", i18n::s(i18n::date(&since[..10.min(since.len())]))),
                ("until", i18n::s(i18n::date(&until[..10.min(until.len())]))),
            ],
        );
        ui.add(egui::Label::new(text).wrap());
    }
    let replace = national(ui, id);
    crate::clerk::copyable(ui, t(ui, "issue-card-serial"), &id.card_serial);
    let pin = match id.pin {
        PinState::Blocked => RichText::new(t(ui, "svc-pin-blocked"))
            .color(Color32::RED)
            .strong(),
        PinState::TriesLeft(n) => RichText::new(ta(ui, "svc-pin-tries", &[("tries", i18n::n(n))])),
    };
    ui.horizontal(|ui| {
        cell(ui, 170.0, RichText::new(t(ui, "svc-pin")).weak());
        cell(ui, 420.0, pin);
    });
    if let Some(at) = &id.returned_at {
        field(ui, &t(ui, "svc-returned-at"), &i18n::date(at));
    }
    certificates(ui, id);
    addresses(ui, id);
    replace
}

fn certificates(ui: &mut egui::Ui, id: &CardIdentity) {
    let lang = i18n::current(ui.ctx());
    ui.add_space(6.0);
    ui.heading(t(ui, "svc-certificates"));
    let cols = [40.0, 180.0, 90.0, 60.0];
    ui.horizontal(|ui| {
        for (w, h) in cols.iter().zip([
            "svc-col-slot",
            "svc-col-status",
            "svc-col-expires",
            "svc-col-on-card",
        ]) {
            cell(ui, *w, RichText::new(t(ui, h)).strong());
        }
        cell(ui, 150.0, RichText::new(t(ui, "svc-col-serial")).strong());
    });
    for c in &id.certificates {
        let status = match (c.status.as_str(), c.reason.as_deref()) {
            ("revoked", Some("certificateHold")) => t(ui, "svc-cert-on-hold"),
            ("revoked", Some(r)) => format!(
                "{} ({})",
                status_word(lang, "revoked"),
                reason_word(lang, r)
            ),
            (s, _) => status_word(lang, s),
        };
        let on_card = id.on_card.contains(&c.serial);
        ui.horizontal(|ui| {
            cell(ui, cols[0], c.slot.as_str());
            cell(ui, cols[1], status);
            cell(
                ui,
                cols[2],
                i18n::date(&c.not_after[..10.min(c.not_after.len())]),
            );
            cell(
                ui,
                cols[3],
                if on_card {
                    t(ui, "svc-yes")
                } else {
                    t(ui, "svc-no")
                },
            );
            cell(ui, 150.0, RichText::new(c.serial.as_str()).monospace());
            if ui
                .small_button(t(ui, "copy"))
                .on_hover_text(ta(
                    ui,
                    "copy-value",
                    &[("what", i18n::s(c.serial.as_str()))],
                ))
                .clicked()
            {
                ui.ctx().copy_text(c.serial.clone());
            }
        });
    }
}

/// A revocation reason in words; one without words as it is.
fn reason_word(lang: Lang, reason: &str) -> String {
    let id = format!("reason-{reason}");
    let w = i18n::tr(lang, &id);
    if w == id {
        reason.to_owned()
    } else {
        w
    }
}

fn addresses(ui: &mut egui::Ui, id: &CardIdentity) {
    ui.add_space(6.0);
    ui.heading(t(ui, "svc-addresses"));
    let cols = [110.0, 300.0, 90.0, 90.0];
    ui.horizontal(|ui| {
        for (w, h) in cols.iter().zip([
            "svc-col-kind",
            "svc-col-address",
            "svc-col-from",
            "svc-col-until",
        ]) {
            cell(ui, *w, RichText::new(t(ui, h)).strong());
        }
    });
    for a in &id.addresses {
        let kind = t(
            ui,
            if a.kind == "temporary" {
                "address-temporary"
            } else {
                "address-permanent"
            },
        );
        let until = match (&a.ended_on, &a.registered_until) {
            (Some(e), _) => ta(ui, "svc-ended", &[("date", i18n::s(i18n::date(e)))]),
            (None, Some(u)) => i18n::date(u),
            (None, None) => "—".into(),
        };
        ui.horizontal(|ui| {
            cell(ui, cols[0], kind);
            cell(ui, cols[1], a.text.as_str());
            cell(ui, cols[2], i18n::date(&a.registered_on));
            cell(ui, cols[3], until);
        });
    }
}

/// A service's name in the operator's language.
pub fn service_name(lang: Lang, s: Service) -> String {
    i18n::tr(lang, service_id(s))
}

fn service_id(s: Service) -> &'static str {
    match s {
        Service::Renew => "svc-renew",
        Service::Unblock => "svc-unblock",
        Service::Suspend => "svc-suspend",
        Service::Resume => "svc-resume",
        Service::CardReturned => "svc-returned",
        Service::AddressSet => "svc-address-set",
        Service::AddressEnd => "svc-address-end",
    }
}

/// The services: a button each, with what it does or why it does not apply now.
fn offers(ui: &mut egui::Ui, st: &mut ServicesState, id: &CardIdentity) {
    let lang = i18n::current(ui.ctx());
    ui.heading(t(ui, "svc-services"));
    let idle = !st.busy() && st.dialog.is_none() && !st.pin.is_open();
    for offer in &id.offers {
        ui.horizontal(|ui| {
            let allowed = offer.refused.is_none();
            let b = ui.add_enabled_ui(allowed && idle, |ui| {
                ui.add_sized(
                    [200.0, 24.0],
                    egui::Button::new(service_name(lang, offer.service)),
                )
            });
            if b.inner.clicked() {
                open(st, offer.service, id);
            }
            let text = match &offer.refused {
                None => RichText::new(t(ui, &format!("{}-help", service_id(offer.service)))),
                Some(why) => {
                    RichText::new(blocker(lang, why)).color(Color32::from_rgb(200, 120, 0))
                }
            };
            ui.allocate_ui_with_layout(
                egui::vec2(ui.available_width().min(460.0), 24.0),
                Layout::left_to_right(Align::Center),
                |ui| {
                    ui.add(egui::Label::new(text).wrap());
                },
            );
        });
    }
}

/// Open what `service` asks before it runs.
fn open(st: &mut ServicesState, service: Service, id: &CardIdentity) {
    st.done = None;
    st.action_failure = None;
    st.focus_dialog = true;
    st.dialog = match service {
        Service::Renew => {
            st.go(Plan::Renew, &mut Vec::new());
            None
        }
        Service::Unblock => Some(Dialog::Unblock {
            identity: false,
            new_puk: false,
            letter: String::new(),
            error: None,
        }),
        Service::Suspend => Some(Dialog::Suspend),
        Service::Resume => Some(Dialog::Resume {
            identity: false,
            error: None,
        }),
        Service::CardReturned => Some(Dialog::Returned),
        Service::AddressSet => Some(Dialog::AddressSet {
            draft: Box::default(),
            error: None,
        }),
        Service::AddressEnd => {
            let _ = id;
            Some(Dialog::AddressEnd {
                ended_on: i18n::date_of(station::time_util::today_utc()),
                error: None,
            })
        }
    };
}

/// The address fields; true when Enter was pressed in one.
pub fn address_form(ui: &mut egui::Ui, d: &mut AddressDraft, first: bool) -> bool {
    let lang = i18n::current(ui.ctx());
    let mut enter = false;
    ui.horizontal(|ui| {
        let r = ui.radio_value(&mut d.temporary, false, t(ui, "address-permanent"));
        if first {
            r.request_focus();
        }
        ui.radio_value(&mut d.temporary, true, t(ui, "address-temporary"));
    });
    egui::Grid::new("svc-address")
        .num_columns(2)
        .min_col_width(150.0)
        .show(ui, |ui| {
            let regions = &station::regions::uz_regions().regions;
            list(
                ui,
                "field-region",
                &mut d.region,
                regions
                    .iter()
                    .map(|r| (r.name.clone(), place(lang, &r.name, &r.name_ru)))
                    .collect(),
            );
            let districts = station::regions::uz_regions()
                .region(&d.region)
                .map(|r| {
                    r.districts
                        .iter()
                        .map(|x| (x.name.clone(), place(lang, &x.name, &x.name_ru)))
                        .collect()
                })
                .unwrap_or_default();
            list(ui, "field-district", &mut d.district, districts);
            for (id, text, date) in [
                ("field-street", &mut d.street, false),
                ("field-house", &mut d.house, false),
                ("field-apartment", &mut d.apartment, false),
                ("field-registered-on", &mut d.registered_on, true),
            ] {
                enter |= text_row(ui, id, text, date);
            }
            if d.temporary {
                enter |= text_row(ui, "field-registered-until", &mut d.registered_until, true);
            }
        });
    enter
}

fn place(lang: Lang, name: &str, name_ru: &str) -> String {
    match lang {
        Lang::Ru | Lang::UzCyrl => format!("{name} — {name_ru}"),
        _ => name.to_owned(),
    }
}

fn list(ui: &mut egui::Ui, label: &str, value: &mut String, items: Vec<(String, String)>) {
    let l = ui.label(t(ui, label));
    let shown = items
        .iter()
        .find(|(v, _)| v == value)
        .map(|(_, s)| s.clone())
        .unwrap_or_else(|| value.clone());
    // Tall enough for the longest list (a region's districts) without scrolling, so every
    // entry is on screen and reachable from the keyboard.
    egui::ComboBox::from_id_salt(("svc", label))
        .width(300.0)
        .height(520.0)
        .truncate()
        .selected_text(shown)
        .show_ui(ui, |ui| {
            for (v, s) in items {
                // Taken with Space from the keyboard as well as by a click: the list closes
                // either way (egui closes it only on a click).
                if ui.selectable_value(value, v, s).clicked() {
                    ui.close();
                }
            }
        })
        .response
        .labelled_by(l.id);
    ui.end_row();
}

fn text_row(ui: &mut egui::Ui, label: &str, value: &mut String, date: bool) -> bool {
    let l = ui.label(t(ui, label));
    let r = ui
        .add(
            egui::TextEdit::singleline(value)
                .desired_width(300.0)
                .hint_text(if date { "DD.MM.YYYY" } else { "" }),
        )
        .labelled_by(l.id);
    if date {
        *value = i18n::mask_date(value);
    }
    ui.end_row();
    r.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter))
}
