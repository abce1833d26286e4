//! The office's cards to replace (docs/gui.md "Cards to replace"), a tab of the clerk's
//! workspace on a station enrolled with the national centre: the cards of this office still in
//! use whose chip data can no longer be authenticated — the Document Signer that signed them
//! was revoked, or the CSCA key that certified it withdrawn from the CSCA Master List — so that
//! the office calls their holders in for a replacement. The list runs on the worker thread
//! (`station::centre::to_replace`, which checks the role and audits the read here and at the
//! centre); a refusal or an unreachable centre is shown in plain words with the station's
//! sentence under "Details". Why a card is flagged is the centre's sentence, shown as it is.

use egui::RichText;
use station::centre::to_replace::{CardToReplace, CardsToReplace};

use crate::clerk::lookup::Find;
use crate::error::{self as gerr, Shown};
use crate::i18n::{self, t, ta};
use crate::worker::{Command, Event};

/// The width of the "Why" column: the centre's sentence wraps inside it.
const WHY_WIDTH: f32 = 300.0;

#[derive(Default)]
pub struct ToReplaceState {
    requested: bool,
    list: Option<Result<CardsToReplace, Shown>>,
}

impl ToReplaceState {
    pub fn busy(&self) -> bool {
        self.requested && self.list.is_none()
    }

    pub fn handle(&mut self, ev: &Event) {
        // Only an answer this session asked for (a late one after a log-out is dropped).
        if let (Event::CardsToReplace(r), true) = (ev, self.requested) {
            self.list = Some(r.clone());
        }
    }

    fn refresh(&mut self, cmds: &mut Vec<Command>) {
        self.requested = true;
        self.list = None;
        cmds.push(Command::CardsToReplace);
    }
}

/// The tab: the heading, what the list is, Refresh, and the table; what to look up for the
/// card whose "Look up" was pressed (the clerk's workspace looks it up to replace the card):
/// the holder of a card this station issued, the document of another station's.
pub fn ui(
    ui: &mut egui::Ui,
    st: &mut ToReplaceState,
    station: &str,
    cmds: &mut Vec<Command>,
) -> Option<Find> {
    let mut chosen = None;
    egui::CentralPanel::default_margins().show(ui, |ui| {
        ui.heading(t(ui, "replace-heading"));
        ui.add(egui::Label::new(t(ui, "replace-note")).wrap());
        if !st.requested {
            st.refresh(cmds);
        }
        if ui
            .add_enabled(!st.busy(), egui::Button::new(t(ui, "refresh")))
            .clicked()
        {
            st.refresh(cmds);
        }
        let list = match &st.list {
            None => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label(t(ui, "replace-loading"));
                });
                return;
            }
            Some(Err(e)) => return gerr::ui(ui, e),
            Some(Ok(list)) => list,
        };
        let office = [("office", i18n::s(list.office.as_str()))];
        if list.cards.is_empty() {
            ui.label(ta(ui, "replace-none", &office));
            return;
        }
        let count = [
            ("office", i18n::s(list.office.as_str())),
            ("count", i18n::n(list.cards.len() as f64)),
        ];
        ui.label(RichText::new(ta(ui, "replace-count", &count)).strong());
        egui::ScrollArea::both()
            .id_salt("replace-scroll")
            .auto_shrink([false, false])
            .show(ui, |ui| {
                egui::Grid::new("cards-to-replace")
                    .striped(true)
                    .num_columns(6)
                    .show(ui, |ui| {
                        header(ui);
                        for c in &list.cards {
                            if row(ui, c) {
                                chosen = Some(if c.station == station {
                                    Find::Holder(c.pinfl.clone())
                                } else {
                                    Find::Document(c.document.clone())
                                });
                            }
                        }
                    });
            });
    });
    chosen
}

fn header(ui: &mut egui::Ui) {
    for h in [
        "replace-col-document",
        "replace-col-state",
        "replace-col-holder",
        "replace-col-issued",
        "replace-col-flagged",
        "replace-col-why",
    ] {
        ui.label(RichText::new(t(ui, h)).strong());
    }
    ui.end_row();
}

/// One card; true when its "Look up" was pressed. Offered for an active card (a suspended
/// card is resumed or revoked first), whichever station of the office issued it.
fn row(ui: &mut egui::Ui, c: &CardToReplace) -> bool {
    let look_up = ui
        .vertical(|ui| {
            ui.label(RichText::new(c.document.as_str()).monospace());
            c.state == "active"
                && ui
                    .small_button(t(ui, "replace-row-lookup"))
                    .on_hover_text(t(ui, "replace-row-lookup-hint"))
                    .clicked()
        })
        .inner;
    ui.label(crate::clerk::lookup::status_word(ui, &c.state));
    let pinfl = t(ui, "field-pinfl");
    ui.label(format!(
        "{} {}\n{pinfl} {}",
        c.surname, c.given_names, c.pinfl
    ));
    let issued = [
        ("date", i18n::s(i18n::date(&c.date_of_issue))),
        ("station", i18n::s(c.station.as_str())),
    ];
    ui.label(ta(ui, "replace-issued", &issued));
    ui.label(i18n::date(&c.flagged_at));
    ui.vertical(|ui| {
        ui.set_width(WHY_WIDTH);
        ui.add(egui::Label::new(RichText::new(c.reason.as_str()).small()).wrap());
    });
    ui.end_row();
    look_up
}
