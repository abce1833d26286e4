//! Two charts of the filtered audit log (`egui_plot`): completed issuances per day and
//! refusals per operator. The numbers drawn are kept in [`PlotData`] so that what the charts
//! show can be read back (tests compare them with the registry's events).

use std::collections::BTreeMap;

use egui_plot::{Bar, BarChart, Plot};
use station::AuditEvent;

use crate::i18n::{self, t};

/// The audit action of a completed issuance (registry `jobs`, docs/audit-format.md).
pub const ISSUED: &str = "issuance.completed";

/// What the charts draw: (day `YYYY-MM-DD`, issuances) by day, and (operator, refusals) by
/// operator name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlotData {
    pub issuances_per_day: Vec<(String, usize)>,
    pub refusals_per_operator: Vec<(String, usize)>,
}

/// Whether `action` records the station refusing what an operator tried: a role or account
/// refusal (`operator.refused`), a service's rule (`<service>.refused`), a refused
/// revocation (`certificate.revoke-refused`) or dual-control attempt
/// (`ca.request.refused-attempt`). A CA request vetoed by an administrator
/// (`ca.request.refused`) is a decision, not a refusal of the one who made it.
pub fn is_refusal(action: &str) -> bool {
    action != "ca.request.refused"
        && (action.ends_with(".refused")
            || action.ends_with("-refused")
            || action.ends_with(".refused-attempt"))
}

impl PlotData {
    pub fn of(events: &[&AuditEvent]) -> PlotData {
        let mut days: BTreeMap<String, usize> = BTreeMap::new();
        let mut ops: BTreeMap<String, usize> = BTreeMap::new();
        for e in events {
            if e.action == ISSUED {
                *days.entry(e.time.chars().take(10).collect()).or_default() += 1;
            }
            if is_refusal(&e.action) {
                *ops.entry(e.operator.clone()).or_default() += 1;
            }
        }
        PlotData {
            issuances_per_day: days.into_iter().collect(),
            refusals_per_operator: ops.into_iter().collect(),
        }
    }
}

/// Bars at 0, 1, 2, … named by `names`, with the x axis labelled by them.
fn bars(
    ui: &mut egui::Ui,
    id: &str,
    title: &str,
    y_label: String,
    data: &[(String, usize)],
    shown: impl Fn(&str) -> String,
) {
    ui.label(egui::RichText::new(title).strong());
    if data.is_empty() {
        ui.label(egui::RichText::new(t(ui, "audit-plot-empty")).weak());
        return;
    }
    let names: Vec<String> = data.iter().map(|(k, _)| shown(k)).collect();
    let chart = BarChart::new(
        title,
        data.iter()
            .enumerate()
            .map(|(i, (k, n))| Bar::new(i as f64, *n as f64).name(shown(k)).width(0.6))
            .collect(),
    );
    let axis_names = names.clone();
    Plot::new(id)
        .height(170.0)
        .allow_drag(false)
        .allow_zoom(false)
        .allow_scroll(false)
        .allow_boxed_zoom(false)
        .include_y(0.0)
        .y_axis_label(y_label)
        .x_axis_formatter(move |mark, _| {
            let i = mark.value.round();
            if (mark.value - i).abs() < 1e-6 && i >= 0.0 {
                axis_names.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .show(ui, move |p| p.bar_chart(chart));
}

/// Both charts, side by side when there is room.
pub fn ui(ui: &mut egui::Ui, data: &PlotData) {
    let lang = i18n::current(ui.ctx());
    ui.columns(2, |cols| {
        bars(
            &mut cols[0],
            "audit-plot-issuances",
            &i18n::tr(lang, "audit-plot-issuances"),
            i18n::tr(lang, "audit-plot-issuances-axis"),
            &data.issuances_per_day,
            i18n::date,
        );
        bars(
            &mut cols[1],
            "audit-plot-refusals",
            &i18n::tr(lang, "audit-plot-refusals"),
            i18n::tr(lang, "audit-plot-refusals-axis"),
            &data.refusals_per_operator,
            str::to_owned,
        );
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(time: &str, operator: &str, action: &str) -> AuditEvent {
        AuditEvent {
            seq: 0,
            time: time.into(),
            operator: operator.into(),
            role: "clerk".into(),
            station: "s".into(),
            action: action.into(),
            object: String::new(),
            details: "{}".into(),
            prev_hash: [0; 32],
            hash: [0; 32],
        }
    }

    #[test]
    fn issuances_count_by_day_and_refusals_by_operator() {
        let evs = [
            ev("2026-12-01T09:00:00Z", "a", ISSUED),
            ev("2026-12-01T17:00:00Z", "b", ISSUED),
            ev("2026-12-02T09:00:00Z", "a", ISSUED),
            ev("2026-12-02T09:00:00Z", "a", "issuance.started"),
            ev("2026-12-02T09:00:00Z", "a", "operator.refused"),
            ev("2026-12-02T09:00:00Z", "a", "address.refused"),
            ev("2026-12-02T09:00:00Z", "b", "certificate.revoke-refused"),
            ev("2026-12-02T09:00:00Z", "c", "ca.request.refused-attempt"),
            ev("2026-12-02T09:00:00Z", "d", "ca.request.refused"),
        ];
        let refs: Vec<&AuditEvent> = evs.iter().collect();
        let d = PlotData::of(&refs);
        assert_eq!(
            d.issuances_per_day,
            vec![("2026-12-01".into(), 2), ("2026-12-02".into(), 1)]
        );
        assert_eq!(
            d.refusals_per_operator,
            vec![("a".into(), 2), ("b".into(), 1), ("c".into(), 1)]
        );
    }
}
