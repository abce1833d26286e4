//! PIV data objects: GET DATA (SP 800-73-4 Part 2 clause 3.1.2) reads an object by its tag,
//! the PIN-protected ones of Part 1 table 3 only after VERIFY, and the lifecycle object of the
//! card contract; PUT DATA writes one under the management key while the card is personalized,
//! and on a LOCKED card only the objects a renewal replaces ([`super::is_operational_tag`]).
//! Discovery (7E) and the BIT group (7F61) are stored as their complete templates (Part 1
//! clauses 3.3.2, 3.3.3).

use super::{
    is_operational_tag, is_writable_tag, read_needs_pin, Piv, MAX_OBJECT_LEN, MAX_TOTAL_OBJECTS,
    TAG_BIT_GROUP, TAG_DISCOVERY, TAG_LIFECYCLE,
};
use crate::apdu::Command;
use crate::os::{CardContext, Lifecycle};
use crate::sw::StatusWord;
use crate::tlv;

impl Piv {
    // --- GET DATA (SP 800-73-4 Part 2 clause 3.1.2) ---
    pub(super) fn get_data(
        &mut self,
        ctx: &CardContext,
        cmd: &Command,
    ) -> Result<Vec<u8>, StatusWord> {
        if (cmd.p1, cmd.p2) != (0x3F, 0xFF) {
            return Err(StatusWord::IncorrectP1P2);
        }
        let tag_bytes = tlv::parse_single(&cmd.data, 0x5C)?;
        if tag_bytes.is_empty() || tag_bytes.len() > 3 {
            return Err(StatusWord::IncorrectData);
        }
        let tag = tag_bytes
            .iter()
            .fold(0u32, |acc, b| (acc << 8) | u32::from(*b));
        if tag == TAG_LIFECYCLE {
            return Ok(tlv::encode(0x53, &[ctx.lifecycle.code()]));
        }
        if read_needs_pin(tag) && !self.pin_verified {
            return Err(StatusWord::SecurityStatusNotSatisfied);
        }
        let value = self.objects.get(&tag).ok_or(StatusWord::NotFound)?;
        if tag == TAG_DISCOVERY || tag == TAG_BIT_GROUP {
            // Stored as the complete template (SP 800-73-4 Part 1 clause 3.3.2 / 3.3.3).
            Ok(value.clone())
        } else {
            Ok(tlv::encode(0x53, value))
        }
    }

    // --- PUT DATA (SP 800-73-4 Part 2 clause 3.2.1) ---
    pub(super) fn put_data(
        &mut self,
        ctx: &mut CardContext,
        cmd: &Command,
    ) -> Result<Vec<u8>, StatusWord> {
        if (cmd.p1, cmd.p2) != (0x3F, 0xFF) {
            return Err(StatusWord::IncorrectP1P2);
        }
        // The state comes first (a LOCKED card answers 6985 to anything it never accepts,
        // whatever the data), then the tag decides what a LOCKED card still accepts.
        if ctx.lifecycle != Lifecycle::Locked {
            self.require_personalizable(ctx)?;
        } else if !self.issuer_authenticated(ctx) {
            return Err(StatusWord::ConditionsNotSatisfied);
        }
        let (first, rest) = tlv::parse_one(&cmd.data)?;
        let (tag, stored) = match first.tag {
            TAG_DISCOVERY | TAG_BIT_GROUP => {
                if !rest.is_empty() {
                    return Err(StatusWord::IncorrectData);
                }
                (first.tag, cmd.data.clone())
            }
            0x5C => {
                let tb = first.value;
                if tb.len() != 3 {
                    return Err(StatusWord::IncorrectData);
                }
                let tag = tb.iter().fold(0u32, |acc, b| (acc << 8) | u32::from(*b));
                let value = tlv::parse_single(rest, 0x53)?;
                (tag, value.to_vec())
            }
            _ => return Err(StatusWord::IncorrectData),
        };
        if !is_writable_tag(tag) {
            return Err(StatusWord::IncorrectData);
        }
        self.require_issuer(ctx, is_operational_tag(tag))?;
        if stored.len() > MAX_OBJECT_LEN {
            return Err(StatusWord::NotEnoughMemory);
        }
        let old = self.objects.get(&tag).map(Vec::len).unwrap_or(0);
        if self.objects_total() - old + stored.len() > MAX_TOTAL_OBJECTS {
            return Err(StatusWord::NotEnoughMemory);
        }
        if stored.is_empty() {
            self.objects.remove(&tag);
        } else {
            self.objects.insert(tag, stored);
        }
        ctx.personalization_step();
        Ok(Vec::new())
    }
}
