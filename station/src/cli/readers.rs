//! `idstation readers`: each PC/SC reader, whether it holds a card, and the card's serial and
//! lifecycle state.

use personalization::transport::pcsc::Pcsc;
use station::error::StationError;

use super::Ctx;

pub fn run(ctx: &Ctx) -> Result<(), StationError> {
    let readers = readers()?;
    ctx.print(&readers, |rs| {
        rs.iter()
            .map(|r| {
                format!(
                    "{}\t{}\n",
                    r["reader"].as_str().unwrap_or(""),
                    r["state"].as_str().unwrap_or("")
                )
            })
            .collect()
    })
}

fn readers() -> Result<Vec<serde_json::Value>, StationError> {
    let pcsc = Pcsc::establish().map_err(|e| StationError::card(None, &e))?;
    let mut out = Vec::new();
    for r in pcsc.readers().map_err(|e| StationError::card(None, &e))? {
        let state = if !r.card_present {
            "no card".to_string()
        } else {
            match pcsc.connect(&r.name).and_then(|mut c| {
                let mut tx = c.begin()?;
                personalization::executor::inspect(&mut tx)
            }) {
                Ok(i) => format!(
                    "card {} {}",
                    station::card::serial_text(i.serial),
                    i.lifecycle
                ),
                Err(e) => format!("card present: {e}"),
            }
        };
        out.push(
            serde_json::json!({ "reader": r.name, "card_present": r.card_present, "state": state }),
        );
    }
    Ok(out)
}
