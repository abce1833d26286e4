//! QC statements: the `qcStatements` certificate extension of RFC 3739 §3.2.6 with the
//! statements of ETSI EN 319 412-5 §4 (Annex B ASN.1 module) and the semantics identifier of
//! ETSI EN 319 412-1 §5.1.
//!
//! ```text
//! QCStatements ::= SEQUENCE OF QCStatement
//! QCStatement ::= SEQUENCE {
//!     statementId   QC-STATEMENT.&id({SupportedStatements}),
//!     statementInfo QC-STATEMENT.&Type({SupportedStatements}{@statementId}) OPTIONAL }
//! QcType ::= SEQUENCE OF OBJECT IDENTIFIER (id-etsi-qct-esign | id-etsi-qct-eseal | id-etsi-qct-web, ...)
//! PdsLocations ::= SEQUENCE SIZE (1..MAX) OF PdsLocation
//! PdsLocation ::= SEQUENCE { url IA5String, language PrintableString (SIZE(2)) }
//! QcCClegislation ::= SEQUENCE OF CountryName
//! SemanticsInformation ::= SEQUENCE {
//!     semanticsIdentifier OBJECT IDENTIFIER OPTIONAL,
//!     nameRegistrationAuthorities NameRegistrationAuthorities OPTIONAL }
//! ```

use const_oid::ObjectIdentifier;
use der::asn1::{Ia5String, PrintableString};
use der::{Any, Encode, Sequence};
use profiles::{QcStatementsRule, QcType};

/// id-pe-qcStatements (RFC 3739 §3.2.6).
pub const ID_PE_QC_STATEMENTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.1.3");
/// id-qcs-pkixQCSyntax-v2 (RFC 3739 §3.2.6.1), carrying SemanticsInformation.
pub const ID_QCS_PKIX_QC_SYNTAX_V2: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.11.2");
/// id-etsi-qcs-semanticsId-Natural (EN 319 412-1 §5.1.3).
pub const ID_ETSI_QCS_SEMANTICS_ID_NATURAL: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("0.4.0.194121.1.1");
/// id-etsi-qcs-QcCompliance (EN 319 412-5 §4.2.1).
pub const ID_ETSI_QCS_QC_COMPLIANCE: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("0.4.0.1862.1.1");
/// id-etsi-qcs-QcSSCD (EN 319 412-5 §4.2.2).
pub const ID_ETSI_QCS_QC_SSCD: ObjectIdentifier = ObjectIdentifier::new_unwrap("0.4.0.1862.1.4");
/// id-etsi-qcs-QcPDS (EN 319 412-5 §4.3.4).
pub const ID_ETSI_QCS_QC_PDS: ObjectIdentifier = ObjectIdentifier::new_unwrap("0.4.0.1862.1.5");
/// id-etsi-qcs-QcType (EN 319 412-5 §4.2.3).
pub const ID_ETSI_QCS_QC_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("0.4.0.1862.1.6");
/// id-etsi-qcs-QcCClegislation (EN 319 412-5 §4.2.4).
pub const ID_ETSI_QCS_QC_CC_LEGISLATION: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("0.4.0.1862.1.7");

/// One QCStatement.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct QcStatement {
    pub statement_id: ObjectIdentifier,
    pub statement_info: Option<Any>,
}

/// PdsLocation (EN 319 412-5 Annex B).
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct PdsLocation {
    pub url: Ia5String,
    pub language: PrintableString,
}

/// SemanticsInformation (RFC 3739 §3.2.6.1), without nameRegistrationAuthorities.
#[derive(Clone, Debug, PartialEq, Eq, Sequence)]
pub struct SemanticsInformation {
    pub semantics_identifier: Option<ObjectIdentifier>,
}

/// id-etsi-qct-esign (EN 319 412-5 §4.2.3).
pub const ID_ETSI_QCT_ESIGN: ObjectIdentifier = ObjectIdentifier::new_unwrap("0.4.0.1862.1.6.1");
/// id-etsi-qct-eseal (EN 319 412-5 §4.2.3).
pub const ID_ETSI_QCT_ESEAL: ObjectIdentifier = ObjectIdentifier::new_unwrap("0.4.0.1862.1.6.2");
/// id-etsi-qct-web (EN 319 412-5 §4.2.3).
pub const ID_ETSI_QCT_WEB: ObjectIdentifier = ObjectIdentifier::new_unwrap("0.4.0.1862.1.6.3");

fn qc_type_oid(t: QcType) -> ObjectIdentifier {
    match t {
        QcType::Esign => ID_ETSI_QCT_ESIGN,
        QcType::Eseal => ID_ETSI_QCT_ESEAL,
        QcType::Web => ID_ETSI_QCT_WEB,
    }
}

fn any_of<T: Encode>(v: &T) -> der::Result<Any> {
    Any::from_der(&v.to_der()?)
}

use der::Decode;

/// The QCStatements value for a profile's `[qc_statements]` table, in the order
/// semantics id, QcCompliance, QcSSCD, QcType, QcPDS, QcCClegislation.
pub fn statements(rule: &QcStatementsRule) -> der::Result<Vec<QcStatement>> {
    let mut out = Vec::new();
    if rule.semantics_id_natural {
        out.push(QcStatement {
            statement_id: ID_QCS_PKIX_QC_SYNTAX_V2,
            statement_info: Some(any_of(&SemanticsInformation {
                semantics_identifier: Some(ID_ETSI_QCS_SEMANTICS_ID_NATURAL),
            })?),
        });
    }
    if rule.compliance {
        out.push(QcStatement {
            statement_id: ID_ETSI_QCS_QC_COMPLIANCE,
            statement_info: None,
        });
    }
    if rule.sscd {
        out.push(QcStatement {
            statement_id: ID_ETSI_QCS_QC_SSCD,
            statement_info: None,
        });
    }
    if !rule.qc_type.is_empty() {
        let types: Vec<ObjectIdentifier> = rule.qc_type.iter().copied().map(qc_type_oid).collect();
        out.push(QcStatement {
            statement_id: ID_ETSI_QCS_QC_TYPE,
            statement_info: Some(any_of(&types)?),
        });
    }
    if !rule.pds.is_empty() {
        let locations = rule
            .pds
            .iter()
            .map(|p| {
                Ok(PdsLocation {
                    url: Ia5String::new(&p.url)?,
                    language: PrintableString::new(&p.lang)?,
                })
            })
            .collect::<der::Result<Vec<_>>>()?;
        out.push(QcStatement {
            statement_id: ID_ETSI_QCS_QC_PDS,
            statement_info: Some(any_of(&locations)?),
        });
    }
    if !rule.legislation.is_empty() {
        let countries = rule
            .legislation
            .iter()
            .map(PrintableString::new)
            .collect::<der::Result<Vec<_>>>()?;
        out.push(QcStatement {
            statement_id: ID_ETSI_QCS_QC_CC_LEGISLATION,
            statement_info: Some(any_of(&countries)?),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qc_compliance_alone_encodes_as_in_en_319_412_5() {
        // SEQUENCE { SEQUENCE { OID 0.4.0.1862.1.1 } }: 30 0a 30 08 06 06 04 00 8e 46 01 01
        let rule = QcStatementsRule {
            compliance: true,
            sscd: false,
            qc_type: vec![],
            pds: vec![],
            legislation: vec![],
            semantics_id_natural: false,
        };
        let der = statements(&rule).unwrap().to_der().unwrap();
        assert_eq!(
            hex::encode(der),
            "300a3008060604008e460101",
            "QcCompliance statement DER"
        );
    }

    #[test]
    fn qc_type_esign_is_a_sequence_of_oids() {
        let rule = QcStatementsRule {
            compliance: false,
            sscd: false,
            qc_type: vec![QcType::Esign],
            pds: vec![],
            legislation: vec![],
            semantics_id_natural: false,
        };
        let der = statements(&rule).unwrap().to_der().unwrap();
        // SEQUENCE { SEQUENCE { OID 0.4.0.1862.1.6, SEQUENCE { OID 0.4.0.1862.1.6.1 } } }
        assert_eq!(
            hex::encode(der),
            "30153013060604008e4601063009060704008e46010601"
        );
    }
}
