//! Valid example records of every kind, for tests, docs and the demo.

use crate::pb;
use crate::pb::record::Body;

fn record(id: &str, handling: pb::HandlingCode, body: Body) -> pb::Record {
    pb::Record { id: id.into(), handling: handling as i32, body: Some(body), ..Default::default() }
}

pub fn contact_point() -> pb::Record {
    record(
        "cp-atpd-duty",
        pb::HandlingCode::Green,
        Body::ContactPoint(pb::ContactPoint {
            name: "ATPD duty officer".into(),
            role: pb::ContactRole::NationalPointOfContact as i32,
            agency: "Anti-Trafficking in Persons Division, Royal Thai Police".into(),
            country: "TH".into(),
            languages: vec!["th".into(), "en".into()],
            channels: vec![
                pb::Channel { r#type: pb::ChannelType::Phone as i32, value: "+66 2 123 4567".into() },
                pb::Channel { r#type: pb::ChannelType::Email as i32, value: "duty@atpd.example.th".into() },
            ],
            availability: Some(pb::Availability {
                always: true,
                hours: String::new(),
                time_zone: "Asia/Bangkok".into(),
            }),
            last_verified: "2026-11-01".into(),
            office: true,
        }),
    )
}

pub fn intelligence_report() -> pb::Record {
    record(
        "ir-fishing-2026-07",
        pb::HandlingCode::Amber,
        Body::IntelligenceReport(pb::IntelligenceReport {
            title: "Recruitment for fishing vessels via online job adverts".into(),
            summary: "Broker network advertises factory jobs; recruits are moved to fishing boats.".into(),
            subject_entity_ids: vec!["en-broker-sok".into()],
            route: vec!["KH".into(), "TH".into(), "MY".into()],
            modus_operandi: "Debt bondage through inflated travel fees; passports withheld.".into(),
            exploitation_types: vec![pb::ExploitationType::Labour as i32],
            source_reliability: pb::SourceReliability::B as i32,
            information_credibility: pb::InformationCredibility::InformationCredibility2 as i32,
            period_start: "2026-05-01".into(),
            period_end: "2026-07-31".into(),
        }),
    )
}

pub fn entity() -> pb::Record {
    record(
        "en-broker-sok",
        pb::HandlingCode::Amber,
        Body::Entity(pb::Entity {
            entity_type: pb::EntityType::Person as i32,
            names: vec!["Sok Dara".into()],
            aliases: vec!["Uncle Sok".into()],
            roles: vec![pb::EntityRole::JobBroker as i32, pb::EntityRole::Recruiter as i32],
            identifiers: vec![
                pb::Identifier {
                    r#type: pb::IdentifierType::Passport as i32,
                    value: "N0123456".into(),
                    country: "KH".into(),
                },
                pb::Identifier {
                    r#type: pb::IdentifierType::Phone as i32,
                    value: "+855 12 345 678".into(),
                    country: String::new(),
                },
            ],
            country: "KH".into(),
            evidence_basis: "Statements of three recruits; bank transfers.".into(),
            source_state: "TH".into(),
            review_by: "2027-06-30".into(),
        }),
    )
}

pub fn victim_referral() -> pb::Record {
    record(
        "vr-2026-0042",
        pb::HandlingCode::Red,
        Body::VictimReferral(pb::VictimReferral {
            pseudonym: "VR-KH-0042".into(),
            identity: Some(pb::VictimIdentity {
                full_name: "Chann Sreymom".into(),
                date_of_birth: "2001-03-14".into(),
                identity_document: "KH-ID 010203040".into(),
                address: "Prey Veng province".into(),
                family_contact: "+855 97 000 1111".into(),
            }),
            sex: pb::Sex::Female as i32,
            age_group: pb::AgeGroup::AgeGroup2539 as i32,
            child: false,
            nationality: "KH".into(),
            preferred_language: "km".into(),
            exploitation_types: vec![pb::ExploitationType::Labour as i32],
            consent: Some(pb::Consent {
                status: pb::ConsentStatus::Given as i32,
                by: "the person".into(),
                date: "2026-09-02".into(),
                guardian_decision: String::new(),
            }),
            reflection_period_start: "2026-09-01".into(),
            early_return_requested: false,
            best_interest_determination: None,
            risk_assessment: None,
            return_voluntariness: pb::Voluntariness::Undecided as i32,
            non_refoulement_check: None,
            identified_in: "TH".into(),
            notes: String::new(),
            residence_permit: None,
            asylum_referral: None,
            service_referral: None,
        }),
    )
}

pub fn statistics_report() -> pb::Record {
    record(
        "sr-th-2025",
        pb::HandlingCode::Green,
        Body::StatisticsReport(pb::StatisticsReport {
            country: "TH".into(),
            period_start: "2025-01-01".into(),
            period_end: "2025-12-31".into(),
            victims: vec![
                pb::VictimCount {
                    sex: pb::Sex::Female as i32,
                    age_group: pb::AgeGroup::AgeGroup1824 as i32,
                    nationality: "MM".into(),
                    exploitation_type: pb::ExploitationType::Sexual as i32,
                    count: 41,
                },
                pb::VictimCount {
                    sex: pb::Sex::Male as i32,
                    age_group: pb::AgeGroup::AgeGroup2539 as i32,
                    nationality: "KH".into(),
                    exploitation_type: pb::ExploitationType::Labour as i32,
                    count: 57,
                },
            ],
            investigations: 312,
            prosecutions: 201,
            convictions: 144,
            framework: vec![pb::FrameworkEntry {
                area: pb::FrameworkArea::InternationalCooperation as i32,
                narrative: "Joint operations with KH and LA under bilateral MOUs.".into(),
            }],
        }),
    )
}

/// One valid record of each kind.
pub fn all() -> Vec<pb::Record> {
    vec![contact_point(), intelligence_report(), entity(), victim_referral(), statistics_report()]
}
