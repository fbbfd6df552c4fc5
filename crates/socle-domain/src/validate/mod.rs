//! Business validation of the identifiers and dates that operators send.
//!
//! Ingestion rejects a message to the dead-letter topic with a machine-readable reason; that
//! reason is [`ValidationError::code`], a short dotted string (`nir.bad_key`,
//! `siret.bad_checksum`, ...) that is part of the contract with operators: it never changes
//! for a given rule, new rules get new codes. The `Display` text is for people and may be
//! reworded.
//!
//! Parsers normalise what the rules allow (spaces and dots inside SIREN/SIRET/NIR, lower-case
//! `2a`/`2b`) and return a typed value holding the canonical form, so that code downstream
//! never re-validates. Checks that need reference data ([`commune`], [`departement`],
//! [`rome`]) take a [`Referential`](crate::reference::Referential).
//!
//! Every case of `fr-id-test-vectors/fr_ids.json` is exercised by `tests/validate_vectors.rs`.

mod dates;
mod france_travail;
mod nir;
mod siret;
mod territory;

pub use dates::{
    age_on, birth_date, past_date, period, MAX_AGE_YEARS, MIN_AGE_YEARS, OLDEST_PLAUSIBLE_YEAR,
};
pub use france_travail::FranceTravailId;
pub use nir::{Nir, Sex};
pub use siret::{luhn_valid, Siren, Siret, LA_POSTE_SIREN};
pub use territory::{
    commune, commune_code, commune_in_departement, departement, departement_code, inclusion_value,
    rome, rome_code,
};

/// `Result` with [`ValidationError`] as the default error.
pub type Result<T, E = ValidationError> = std::result::Result<T, E>;

/// Every code [`ValidationError::code`] can return, for documentation and for consumers that
/// enumerate reasons (dead-letter dashboards, operators' mappings).
pub const CODES: &[&str] = &[
    "nir.length",
    "nir.characters",
    "nir.sex",
    "nir.month",
    "nir.departement",
    "nir.commune",
    "nir.order",
    "nir.bad_key",
    "nir.specimen",
    "nir.birth_date_mismatch",
    "siren.length",
    "siren.characters",
    "siren.bad_checksum",
    "siret.length",
    "siret.characters",
    "siret.bad_checksum",
    "siret.la_poste_checksum",
    "siret.siren_bad_checksum",
    "france_travail_id.format",
    "cog.commune.format",
    "cog.commune.unknown",
    "cog.departement.format",
    "cog.departement.unknown",
    "cog.commune.not_in_departement",
    "rome.format",
    "rome.unknown",
    "inclusion.thematique.unknown",
    "inclusion.public.unknown",
    "inclusion.frais.unknown",
    "inclusion.mode_accueil.unknown",
    "inclusion.mode_mobilisation.unknown",
    "inclusion.personne_mobilisatrice.unknown",
    "inclusion.reseau_porteur.unknown",
    "inclusion.type_de_service.unknown",
    "date.in_future",
    "date.too_old",
    "date.age_too_low",
    "date.age_too_high",
    "date.period_ends_before_start",
];

/// A value that breaks a business rule. Always the sender's fault: retrying cannot help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValidationError {
    // --- NIR (numéro d'inscription au répertoire, "numéro de sécurité sociale") ---
    #[error("NIR must have 15 characters, got {0}")]
    NirLength(usize),
    #[error("NIR may only hold digits (and 2A/2B for Corsica)")]
    NirCharacters,
    #[error("NIR sex digit must be 1, 2, 3, 4, 7 or 8, got {0}")]
    NirSex(char),
    #[error("NIR birth month {0:02} is not a month nor a fictitious month (20, 30-42, 50-99)")]
    NirMonth(u8),
    #[error("NIR département {0:?} does not exist")]
    NirDepartement(String),
    #[error("NIR commune or country code 000 does not exist")]
    NirCommune,
    #[error("NIR order number 000 does not exist")]
    NirOrder,
    #[error("NIR key is {found:02}, expected {expected:02}")]
    NirBadKey { expected: u8, found: u8 },
    #[error("NIR is the specimen printed on official forms, not a real person's")]
    NirSpecimen,
    #[error("NIR birth year or month does not match the birth date")]
    NirBirthDateMismatch,

    // --- SIREN / SIRET ---
    #[error("SIREN must have 9 digits, got {0} characters")]
    SirenLength(usize),
    #[error("SIREN may only hold digits")]
    SirenCharacters,
    #[error("SIREN fails the Luhn check")]
    SirenBadChecksum,
    #[error("SIRET must have 14 digits, got {0} characters")]
    SiretLength(usize),
    #[error("SIRET may only hold digits")]
    SiretCharacters,
    #[error("SIRET fails the Luhn check")]
    SiretBadChecksum,
    #[error("La Poste SIRET: the sum of its digits must be a multiple of 5")]
    SiretLaPosteChecksum,
    #[error("SIRET's first 9 digits are not a valid SIREN")]
    SiretSirenBadChecksum,

    // --- France Travail ---
    #[error(
        "France Travail identifier must be 7 digits and a digit or capital letter, or 11 digits"
    )]
    FranceTravailIdFormat,

    // --- Territories (INSEE COG) ---
    #[error("commune code {0:?} is not 5 characters (2 digits or 2A/2B, then 3 digits)")]
    CommuneFormat(String),
    #[error("commune code {0:?} is not in the INSEE COG")]
    CommuneUnknown(String),
    #[error("département code {0:?} is not 2 digits, 2A, 2B or 97x")]
    DepartementFormat(String),
    #[error("département code {0:?} is not in the INSEE COG")]
    DepartementUnknown(String),
    #[error("commune {commune:?} is not in département {departement:?}")]
    CommuneNotInDepartement {
        commune: String,
        departement: String,
    },

    // --- ROME 4.0 ---
    #[error("ROME code {0:?} does not match ^[A-N]\\d{{4}}$")]
    RomeFormat(String),
    #[error("ROME code {0:?} is not in the ROME referential")]
    RomeUnknown(String),

    // --- data·inclusion enumerations ---
    #[error("{value:?} is not a data·inclusion {} value", list.as_str())]
    NotInList { list: InclusionList, value: String },

    // --- Dates ---
    #[error("date {0} is in the future")]
    DateInFuture(chrono::NaiveDate),
    #[error("date {0} is implausibly old")]
    DateTooOld(chrono::NaiveDate),
    #[error("age {0} is below the minimum of {min}", min = MIN_AGE_YEARS)]
    AgeTooLow(u32),
    #[error("age {0} is above the maximum of {max}", max = MAX_AGE_YEARS)]
    AgeTooHigh(u32),
    #[error("period ends on {end}, before it starts on {start}")]
    PeriodEndsBeforeStart {
        start: chrono::NaiveDate,
        end: chrono::NaiveDate,
    },
}

impl ValidationError {
    /// The stable machine-readable code of the broken rule, e.g. `nir.bad_key`.
    ///
    /// Dead-letter records and API error bodies carry it; operators match on it.
    pub fn code(&self) -> &'static str {
        use ValidationError as E;
        match self {
            E::NirLength(_) => "nir.length",
            E::NirCharacters => "nir.characters",
            E::NirSex(_) => "nir.sex",
            E::NirMonth(_) => "nir.month",
            E::NirDepartement(_) => "nir.departement",
            E::NirCommune => "nir.commune",
            E::NirOrder => "nir.order",
            E::NirBadKey { .. } => "nir.bad_key",
            E::NirSpecimen => "nir.specimen",
            E::NirBirthDateMismatch => "nir.birth_date_mismatch",
            E::SirenLength(_) => "siren.length",
            E::SirenCharacters => "siren.characters",
            E::SirenBadChecksum => "siren.bad_checksum",
            E::SiretLength(_) => "siret.length",
            E::SiretCharacters => "siret.characters",
            E::SiretBadChecksum => "siret.bad_checksum",
            E::SiretLaPosteChecksum => "siret.la_poste_checksum",
            E::SiretSirenBadChecksum => "siret.siren_bad_checksum",
            E::FranceTravailIdFormat => "france_travail_id.format",
            E::CommuneFormat(_) => "cog.commune.format",
            E::CommuneUnknown(_) => "cog.commune.unknown",
            E::DepartementFormat(_) => "cog.departement.format",
            E::DepartementUnknown(_) => "cog.departement.unknown",
            E::CommuneNotInDepartement { .. } => "cog.commune.not_in_departement",
            E::RomeFormat(_) => "rome.format",
            E::RomeUnknown(_) => "rome.unknown",
            E::NotInList { list, .. } => list.code(),
            E::DateInFuture(_) => "date.in_future",
            E::DateTooOld(_) => "date.too_old",
            E::AgeTooLow(_) => "date.age_too_low",
            E::AgeTooHigh(_) => "date.age_too_high",
            E::PeriodEndsBeforeStart { .. } => "date.period_ends_before_start",
        }
    }
}

/// A data·inclusion v1 reference list (`schemas/v1/extra/*.json` upstream).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InclusionList {
    Thematique,
    Public,
    Frais,
    ModeAccueil,
    ModeMobilisation,
    PersonneMobilisatrice,
    ReseauPorteur,
    TypeDeService,
}

impl InclusionList {
    /// Every list, in a fixed order.
    pub const ALL: [InclusionList; 8] = [
        InclusionList::Thematique,
        InclusionList::Public,
        InclusionList::Frais,
        InclusionList::ModeAccueil,
        InclusionList::ModeMobilisation,
        InclusionList::PersonneMobilisatrice,
        InclusionList::ReseauPorteur,
        InclusionList::TypeDeService,
    ];

    /// The list's name in error messages and codes, e.g. `mode_accueil`.
    pub fn as_str(self) -> &'static str {
        match self {
            InclusionList::Thematique => "thematique",
            InclusionList::Public => "public",
            InclusionList::Frais => "frais",
            InclusionList::ModeAccueil => "mode_accueil",
            InclusionList::ModeMobilisation => "mode_mobilisation",
            InclusionList::PersonneMobilisatrice => "personne_mobilisatrice",
            InclusionList::ReseauPorteur => "reseau_porteur",
            InclusionList::TypeDeService => "type_de_service",
        }
    }

    /// The file name of the list in data·inclusion's `extra/` folder.
    pub fn file_name(self) -> &'static str {
        match self {
            InclusionList::Thematique => "thematiques.json",
            InclusionList::Public => "publics.json",
            InclusionList::Frais => "frais.json",
            InclusionList::ModeAccueil => "modes-accueil.json",
            InclusionList::ModeMobilisation => "modes-mobilisation.json",
            InclusionList::PersonneMobilisatrice => "personnes-mobilisatrices.json",
            InclusionList::ReseauPorteur => "reseaux-porteurs.json",
            InclusionList::TypeDeService => "types-de-services.json",
        }
    }

    /// The validation code for a value outside this list, e.g. `inclusion.frais.unknown`.
    pub fn code(self) -> &'static str {
        match self {
            InclusionList::Thematique => "inclusion.thematique.unknown",
            InclusionList::Public => "inclusion.public.unknown",
            InclusionList::Frais => "inclusion.frais.unknown",
            InclusionList::ModeAccueil => "inclusion.mode_accueil.unknown",
            InclusionList::ModeMobilisation => "inclusion.mode_mobilisation.unknown",
            InclusionList::PersonneMobilisatrice => "inclusion.personne_mobilisatrice.unknown",
            InclusionList::ReseauPorteur => "inclusion.reseau_porteur.unknown",
            InclusionList::TypeDeService => "inclusion.type_de_service.unknown",
        }
    }
}

/// Removes the separators people write inside identifiers: spaces (including no-break
/// spaces) and dots. Anything else is kept, so that it fails the character check.
pub(crate) fn compact(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, ' ' | '.' | '\u{a0}' | '\u{202f}' | '\t'))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_and_dotted() {
        let d = chrono::NaiveDate::from_ymd_opt(2000, 1, 1).expect("valid date");
        let all = [
            ValidationError::NirLength(1),
            ValidationError::NirCharacters,
            ValidationError::NirSex('9'),
            ValidationError::NirMonth(13),
            ValidationError::NirDepartement("2C".into()),
            ValidationError::NirCommune,
            ValidationError::NirOrder,
            ValidationError::NirBadKey {
                expected: 1,
                found: 2,
            },
            ValidationError::NirSpecimen,
            ValidationError::NirBirthDateMismatch,
            ValidationError::SirenLength(1),
            ValidationError::SirenCharacters,
            ValidationError::SirenBadChecksum,
            ValidationError::SiretLength(1),
            ValidationError::SiretCharacters,
            ValidationError::SiretBadChecksum,
            ValidationError::SiretLaPosteChecksum,
            ValidationError::SiretSirenBadChecksum,
            ValidationError::FranceTravailIdFormat,
            ValidationError::CommuneFormat(String::new()),
            ValidationError::CommuneUnknown(String::new()),
            ValidationError::DepartementFormat(String::new()),
            ValidationError::DepartementUnknown(String::new()),
            ValidationError::CommuneNotInDepartement {
                commune: String::new(),
                departement: String::new(),
            },
            ValidationError::RomeFormat(String::new()),
            ValidationError::RomeUnknown(String::new()),
            ValidationError::NotInList {
                list: InclusionList::Thematique,
                value: String::new(),
            },
            ValidationError::NotInList {
                list: InclusionList::Public,
                value: String::new(),
            },
            ValidationError::DateInFuture(d),
            ValidationError::DateTooOld(d),
            ValidationError::AgeTooLow(1),
            ValidationError::AgeTooHigh(1),
            ValidationError::PeriodEndsBeforeStart { start: d, end: d },
        ];
        let codes: std::collections::HashSet<_> = all.iter().map(ValidationError::code).collect();
        assert_eq!(codes.len(), all.len());
        for c in &codes {
            assert!(CODES.contains(c), "{c} missing from CODES");
        }
        for list in InclusionList::ALL {
            assert!(CODES.contains(&list.code()), "{}", list.code());
        }
        let unique: std::collections::HashSet<_> = CODES.iter().collect();
        assert_eq!(unique.len(), CODES.len());
        // Every variant but NotInList has one code; NotInList has one per list.
        assert_eq!(CODES.len(), all.len() - 2 + InclusionList::ALL.len());
        for c in codes {
            assert!(c.contains('.'), "{c}");
            assert!(
                c.chars()
                    .all(|c| c.is_ascii_lowercase() || c == '.' || c == '_'),
                "{c}"
            );
        }
    }

    #[test]
    fn compact_strips_only_separators() {
        assert_eq!(compact("732 829 320\u{a0}00074"), "73282932000074");
        assert_eq!(compact("1-2"), "1-2");
    }
}
