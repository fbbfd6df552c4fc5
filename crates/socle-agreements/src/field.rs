//! The fields an agreement can grant, and how the read models name them.

/// A grantable field of a person's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Field {
    RegistrationOperator,
    RegistrationOrganisation,
    RegistrationDate,
    ResidenceCommune,
    ResidenceDepartement,
    IdentityNir,
    IdentityFamilyName,
    IdentityGivenName,
    IdentityBirthDate,
    ContactEmail,
    ContactPhone,
    ContactAddress,
    SituationRegistrationCategory,
    SituationRsaBeneficiary,
    HealthRqth,
    HealthRqthUntil,
    HealthBoeth,
    OrientationReferentOperator,
    OrientationPathway,
    ExitDate,
    ExitDestination,
}

/// The SQL type of a field's column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqlType {
    Text,
    Date,
    Boolean,
}

impl SqlType {
    pub fn sql(self) -> &'static str {
        match self {
            SqlType::Text => "text",
            SqlType::Date => "date",
            SqlType::Boolean => "boolean",
        }
    }
}

impl Field {
    pub const ALL: [Field; 21] = [
        Field::RegistrationOperator,
        Field::RegistrationOrganisation,
        Field::RegistrationDate,
        Field::ResidenceCommune,
        Field::ResidenceDepartement,
        Field::IdentityNir,
        Field::IdentityFamilyName,
        Field::IdentityGivenName,
        Field::IdentityBirthDate,
        Field::ContactEmail,
        Field::ContactPhone,
        Field::ContactAddress,
        Field::SituationRegistrationCategory,
        Field::SituationRsaBeneficiary,
        Field::HealthRqth,
        Field::HealthRqthUntil,
        Field::HealthBoeth,
        Field::OrientationReferentOperator,
        Field::OrientationPathway,
        Field::ExitDate,
        Field::ExitDestination,
    ];

    /// The name used in agreement files, e.g. `identity.family_name`.
    pub fn name(self) -> &'static str {
        match self {
            Field::RegistrationOperator => "registration.operator",
            Field::RegistrationOrganisation => "registration.organisation",
            Field::RegistrationDate => "registration.date",
            Field::ResidenceCommune => "residence.commune",
            Field::ResidenceDepartement => "residence.departement",
            Field::IdentityNir => "identity.nir",
            Field::IdentityFamilyName => "identity.family_name",
            Field::IdentityGivenName => "identity.given_name",
            Field::IdentityBirthDate => "identity.birth_date",
            Field::ContactEmail => "contact.email",
            Field::ContactPhone => "contact.phone",
            Field::ContactAddress => "contact.address",
            Field::SituationRegistrationCategory => "situation.registration_category",
            Field::SituationRsaBeneficiary => "situation.rsa_beneficiary",
            Field::HealthRqth => "health.rqth",
            Field::HealthRqthUntil => "health.rqth_until",
            Field::HealthBoeth => "health.boeth",
            Field::OrientationReferentOperator => "orientation.referent_operator",
            Field::OrientationPathway => "orientation.pathway",
            Field::ExitDate => "exit.date",
            Field::ExitDestination => "exit.destination",
        }
    }

    /// The field named `name` in an agreement file.
    pub fn parse(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The column in the read models: the name with `.` replaced by `_`.
    pub fn column(self) -> String {
        self.name().replace('.', "_")
    }

    pub fn sql_type(self) -> SqlType {
        match self {
            Field::RegistrationDate
            | Field::IdentityBirthDate
            | Field::HealthRqthUntil
            | Field::ExitDate => SqlType::Date,
            Field::SituationRsaBeneficiary | Field::HealthRqth | Field::HealthBoeth => {
                SqlType::Boolean
            }
            _ => SqlType::Text,
        }
    }

    /// Health-related (GDPR art. 9): only an agreement with a sensitive legal basis may grant it.
    pub fn is_health(self) -> bool {
        matches!(
            self,
            Field::HealthRqth | Field::HealthRqthUntil | Field::HealthBoeth
        )
    }

    /// Personal data sealed in the events (opened with the person's key to be projected).
    pub fn is_sealed(self) -> bool {
        matches!(
            self,
            Field::IdentityNir
                | Field::IdentityFamilyName
                | Field::IdentityGivenName
                | Field::IdentityBirthDate
                | Field::ContactEmail
                | Field::ContactPhone
                | Field::ContactAddress
                | Field::HealthRqth
                | Field::HealthRqthUntil
                | Field::HealthBoeth
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_columns_are_sql_identifiers() {
        for f in Field::ALL {
            assert_eq!(Field::parse(f.name()), Some(f));
            assert!(f
                .column()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_'));
        }
        assert_eq!(Field::parse("identity.shoe_size"), None);
    }
}
