//! The patient record: Dutch identifiers and the FHIR resources that go
//! into the HIS (the SOEP entry as the Nictiz zib2020 profiles write it).

pub mod client;
mod delivery;
pub mod documentation;
// Public for the core's own tests and benchmarks (feature `testing`).
#[cfg_attr(not(feature = "testing"), allow(unreachable_pub))]
mod engine;
pub mod identifiers;
pub mod soep;

pub use delivery::{DeliveryReport, HisEndpoint};
pub use documentation::{DocItem, DocProgress, DocState, DocStatus, DocumentDraft};
pub use identifiers::{PractitionerId, is_valid_bsn, parse_launch_link, patient_identifier};
pub use soep::{Clinician, Icpc, SoepEntry, SoepKind, SoepLine};

pub use crate::fhir::{narrative, rfc3339 as fhir_date, stable_uuid};
