//! The IAM actions opsdesk's AWS calls need. The list is kept beside the calls: a test finds
//! every AWS SDK operation this crate calls and holds the list, the standalone IAM policy and
//! the CloudFormation template's server policy to exactly those actions, so a new call cannot
//! ship without its permission and a permission cannot outlive its call.

/// Each AWS SDK operation opsdesk calls, as written in the code, with the IAM action it needs
/// (`None` when the call needs no permission).
pub const CALLS: &[(&str, Option<&str>)] = &[
    // The SQS consumer.
    ("receive_message", Some("sqs:ReceiveMessage")),
    ("delete_message_batch", Some("sqs:DeleteMessage")),
    // The AWS Health poller; the ...ForOrganization calls with organization = true.
    ("describe_events", Some("health:DescribeEvents")),
    (
        "describe_event_details",
        Some("health:DescribeEventDetails"),
    ),
    (
        "describe_affected_entities",
        Some("health:DescribeAffectedEntities"),
    ),
    (
        "describe_events_for_organization",
        Some("health:DescribeEventsForOrganization"),
    ),
    (
        "describe_affected_accounts_for_organization",
        Some("health:DescribeAffectedAccountsForOrganization"),
    ),
    (
        "describe_event_details_for_organization",
        Some("health:DescribeEventDetailsForOrganization"),
    ),
    (
        "describe_affected_entities_for_organization",
        Some("health:DescribeAffectedEntitiesForOrganization"),
    ),
    // The Trusted Advisor poller: checks in the Support API, then the Trusted Advisor API.
    (
        "describe_trusted_advisor_checks",
        Some("support:DescribeTrustedAdvisorChecks"),
    ),
    (
        "describe_trusted_advisor_check_result",
        Some("support:DescribeTrustedAdvisorCheckResult"),
    ),
    ("list_checks", Some("trustedadvisor:ListChecks")),
    (
        "list_recommendations",
        Some("trustedadvisor:ListRecommendations"),
    ),
    (
        "list_recommendation_resources",
        Some("trustedadvisor:ListRecommendationResources"),
    ),
    // SNS notification channels.
    ("publish", Some("sns:Publish")),
    // AWS Support cases, in the case's account.
    ("create_case", Some("support:CreateCase")),
    ("describe_cases", Some("support:DescribeCases")),
    (
        "describe_communications",
        Some("support:DescribeCommunications"),
    ),
    (
        "add_communication_to_case",
        Some("support:AddCommunicationToCase"),
    ),
    ("resolve_case", Some("support:ResolveCase")),
    ("describe_services", Some("support:DescribeServices")),
    (
        "describe_severity_levels",
        Some("support:DescribeSeverityLevels"),
    ),
    // Files with a case, and files of AWS's messages.
    (
        "add_attachments_to_set",
        Some("support:AddAttachmentsToSet"),
    ),
    ("describe_attachment", Some("support:DescribeAttachment")),
    // Ticket files in S3 ([attachments.s3]), and messages SES stored in S3 ([email.ses_s3]).
    ("put_object", Some("s3:PutObject")),
    ("get_object", Some("s3:GetObject")),
    // Which account opsdesk's own credentials belong to: STS answers it without a permission.
    ("get_caller_identity", None),
    // The role of an account's support_role_arn, through the SDK's AssumeRoleProvider.
    ("AssumeRoleProvider", Some("sts:AssumeRole")),
];

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use super::CALLS;

    /// Every operation of the AWS SDK clients this crate depends on, as the SDK names its
    /// builder methods (the modules under each crate's `src/operation/`).
    const SDK_OPERATIONS: &str = "
        add_attachments_to_set add_communication_to_case complete_attachment_upload create_case
        describe_attachment describe_attachment_upload_status describe_cases
        describe_communications describe_create_case_options describe_services
        describe_severity_levels describe_supported_languages
        describe_trusted_advisor_check_refresh_statuses describe_trusted_advisor_check_result
        describe_trusted_advisor_check_summaries describe_trusted_advisor_checks
        get_attachment_download_link get_attachment_upload_links refresh_trusted_advisor_check
        resolve_case
        describe_affected_accounts_for_organization describe_affected_entities
        describe_affected_entities_for_organization describe_entity_aggregates
        describe_entity_aggregates_for_organization describe_event_aggregates
        describe_event_details describe_event_details_for_organization describe_event_types
        describe_events describe_events_for_organization
        describe_health_service_status_for_organization describe_service_lifecycle
        disable_health_service_access_for_organization
        enable_health_service_access_for_organization
        batch_update_recommendation_resource_exclusion get_organization_recommendation
        get_recommendation list_checks list_organization_recommendation_accounts
        list_organization_recommendation_resources list_organization_recommendations
        list_recommendation_resources list_recommendations list_recommendations_for_resource
        update_organization_recommendation_lifecycle update_recommendation_lifecycle
        add_permission cancel_message_move_task change_message_visibility
        change_message_visibility_batch create_queue delete_message delete_message_batch
        delete_queue get_queue_attributes get_queue_url list_dead_letter_source_queues
        list_message_move_tasks list_queue_tags list_queues purge_queue receive_message
        remove_permission send_message send_message_batch set_queue_attributes
        start_message_move_task tag_queue untag_queue
        check_if_phone_number_is_opted_out confirm_subscription create_platform_application
        create_platform_endpoint create_sms_sandbox_phone_number create_topic delete_endpoint
        delete_platform_application delete_sms_sandbox_phone_number delete_topic
        get_data_protection_policy get_endpoint_attributes get_platform_application_attributes
        get_sms_attributes get_sms_sandbox_account_status get_subscription_attributes
        get_topic_attributes list_endpoints_by_platform_application list_origination_numbers
        list_phone_numbers_opted_out list_platform_applications list_sms_sandbox_phone_numbers
        list_subscriptions list_subscriptions_by_topic list_tags_for_resource list_topics
        opt_in_phone_number publish publish_batch put_data_protection_policy
        set_endpoint_attributes set_platform_application_attributes set_sms_attributes
        set_subscription_attributes set_topic_attributes subscribe tag_resource unsubscribe
        untag_resource verify_sms_sandbox_phone_number
        assume_role assume_role_with_saml assume_role_with_web_identity assume_root
        decode_authorization_message get_access_key_info get_caller_identity
        get_delegated_access_token get_federation_token get_session_token
        get_web_identity_token
        abort_multipart_upload complete_multipart_upload copy_object create_bucket
        create_bucket_metadata_configuration create_bucket_metadata_table_configuration
        create_multipart_upload create_session delete_bucket delete_bucket_analytics_configuration
        delete_bucket_cors delete_bucket_encryption
        delete_bucket_intelligent_tiering_configuration delete_bucket_inventory_configuration
        delete_bucket_lifecycle delete_bucket_metadata_configuration
        delete_bucket_metadata_table_configuration delete_bucket_metrics_configuration
        delete_bucket_ownership_controls delete_bucket_policy delete_bucket_replication
        delete_bucket_tagging delete_bucket_website delete_object delete_object_annotation
        delete_object_tagging delete_objects delete_public_access_block get_bucket_abac
        get_bucket_accelerate_configuration get_bucket_acl get_bucket_analytics_configuration
        get_bucket_cors get_bucket_encryption get_bucket_intelligent_tiering_configuration
        get_bucket_inventory_configuration get_bucket_lifecycle_configuration get_bucket_location
        get_bucket_logging get_bucket_metadata_configuration
        get_bucket_metadata_table_configuration get_bucket_metrics_configuration
        get_bucket_notification_configuration get_bucket_ownership_controls get_bucket_policy
        get_bucket_policy_status get_bucket_replication get_bucket_request_payment
        get_bucket_tagging get_bucket_versioning get_bucket_website get_object get_object_acl
        get_object_annotation get_object_attributes get_object_legal_hold
        get_object_lock_configuration get_object_retention get_object_tagging get_object_torrent
        get_public_access_block head_bucket head_object list_bucket_analytics_configurations
        list_bucket_intelligent_tiering_configurations list_bucket_inventory_configurations
        list_bucket_metrics_configurations list_buckets list_directory_buckets
        list_multipart_uploads list_object_annotations list_object_versions list_objects
        list_objects_v2 list_parts put_bucket_abac put_bucket_accelerate_configuration
        put_bucket_acl put_bucket_analytics_configuration put_bucket_cors put_bucket_encryption
        put_bucket_intelligent_tiering_configuration put_bucket_inventory_configuration
        put_bucket_lifecycle_configuration put_bucket_logging put_bucket_metrics_configuration
        put_bucket_notification_configuration put_bucket_ownership_controls put_bucket_policy
        put_bucket_replication put_bucket_request_payment put_bucket_tagging put_bucket_versioning
        put_bucket_website put_object put_object_acl put_object_annotation put_object_legal_hold
        put_object_lock_configuration put_object_retention put_object_tagging
        put_public_access_block rename_object restore_object select_object_content
        update_bucket_metadata_annotation_table_configuration
        update_bucket_metadata_inventory_table_configuration
        update_bucket_metadata_journal_table_configuration update_object_encryption upload_part
        upload_part_copy write_get_object_response
    ";

    fn sources(dir: &Path, out: &mut String) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs")
                && !path.ends_with("permissions.rs")
            {
                out.push_str(&std::fs::read_to_string(&path).unwrap());
            }
        }
    }

    /// The SDK operations the crate's source calls: `.operation()`, as the fluent builders
    /// are started, and the SDK's assume-role credentials provider.
    fn called() -> BTreeSet<String> {
        let mut code = String::new();
        sources(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut code,
        );
        let mut found: BTreeSet<String> = SDK_OPERATIONS
            .split_whitespace()
            .filter(|op| code.contains(&format!(".{op}()")))
            .map(str::to_owned)
            .collect();
        if code.contains("AssumeRoleProvider::builder") {
            found.insert("AssumeRoleProvider".into());
        }
        found
    }

    fn needed() -> BTreeSet<String> {
        CALLS
            .iter()
            .filter_map(|(_, action)| action.map(str::to_owned))
            .collect()
    }

    fn deploy_file(name: &str) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../deploy/aws")
            .join(name);
        std::fs::read_to_string(path).unwrap()
    }

    /// The actions of the template's server policy: the `ServerPolicy` resource's text.
    fn template_actions() -> BTreeSet<String> {
        let template = deploy_file("opsdesk-signals.yaml");
        let start = template.find("\n  ServerPolicy:").unwrap();
        let end = template[start..].find("\nOutputs:").unwrap() + start;
        template[start..end]
            .lines()
            .map(|l| l.split('#').next().unwrap_or_default().trim())
            .filter_map(|l| {
                let l = l.strip_prefix("Action:").unwrap_or(l).trim();
                let l = l.strip_prefix("- ").unwrap_or(l).trim();
                let (service, action) = l.split_once(':')?;
                (!service.is_empty()
                    && service
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                    && action.bytes().all(|b| b.is_ascii_alphabetic())
                    && action.starts_with(|c: char| c.is_ascii_uppercase()))
                .then(|| l.to_owned())
            })
            .collect()
    }

    fn policy_actions() -> BTreeSet<String> {
        let policy: serde_json::Value =
            serde_json::from_str(&deploy_file("opsdesk-iam-policy.json")).unwrap();
        let mut actions = BTreeSet::new();
        for statement in policy["Statement"].as_array().unwrap() {
            assert_eq!(statement["Effect"], "Allow");
            match &statement["Action"] {
                serde_json::Value::String(a) => {
                    actions.insert(a.clone());
                }
                serde_json::Value::Array(list) => {
                    actions.extend(list.iter().map(|a| a.as_str().unwrap().to_owned()));
                }
                other => panic!("unexpected Action {other}"),
            }
        }
        actions
    }

    #[test]
    fn the_list_names_exactly_the_aws_calls_the_code_makes() {
        let listed: BTreeSet<String> = CALLS.iter().map(|(op, _)| (*op).to_owned()).collect();
        assert_eq!(called(), listed);
    }

    #[test]
    fn the_policy_and_the_template_grant_exactly_what_the_calls_need() {
        assert_eq!(
            policy_actions(),
            needed(),
            "deploy/aws/opsdesk-iam-policy.json"
        );
        assert_eq!(
            template_actions(),
            needed(),
            "deploy/aws/opsdesk-signals.yaml"
        );
    }
}
