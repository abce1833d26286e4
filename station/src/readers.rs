//! PC/SC readers (PC/SC part 5 via `pcsc-lite`): which reader an issuance or a recovery works
//! with.

use personalization::transport::pcsc::Pcsc;

use crate::error::StationError;

/// Pick the reader: the named one (or a unique part of its name), else the only one with a
/// card in it.
pub fn choose_reader(pcsc: &Pcsc, wanted: Option<&str>) -> Result<String, StationError> {
    if let Some(w) = wanted {
        return personalization::transport::pcsc::find_reader(pcsc, w).map_err(|e| match e {
            personalization::Error::Invalid { field, rule } => {
                StationError::Invalid { field, rule }
            }
            e => StationError::card(None, &e),
        });
    }
    let readers = pcsc.readers().map_err(|e| StationError::card(None, &e))?;
    let with_card: Vec<_> = readers.iter().filter(|r| r.card_present).collect();
    match with_card.as_slice() {
        [one] => Ok(one.name.clone()),
        [] => Err(StationError::Card {
            step: None,
            message: format!(
                "no card in any reader ({}); insert a blank card",
                readers
                    .iter()
                    .map(|r| r.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
        many => Err(StationError::invalid(
            "reader",
            format!(
                "cards are present in several readers ({}); name one with --reader",
                many.iter()
                    .map(|r| r.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// The reader holding the card with `serial` (as [`crate::card::serial_text`] writes it), if
/// any.
pub fn find_card(serial: &str) -> Option<String> {
    let pcsc = Pcsc::establish().ok()?;
    for r in pcsc.readers().ok()? {
        if !r.card_present {
            continue;
        }
        let Ok(mut card) = pcsc.connect(&r.name) else {
            continue;
        };
        let Ok(mut tx) = card.begin() else { continue };
        if let Ok(info) = personalization::executor::inspect(&mut tx) {
            if crate::card::serial_text(info.serial) == serial {
                return Some(r.name);
            }
        }
    }
    None
}
