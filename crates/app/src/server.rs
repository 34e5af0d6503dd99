use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use opsdesk_core::{Desk, SystemClock};
use opsdesk_store::{Db, DbOptions};
use opsdesk_web::AppState;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use crate::config::{Config, LogFormat};
use crate::jobs::Leases;

/// Sets up logging to stdout in the configured format.
pub fn init_logging(config: &Config) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    let _ = match config.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Opens the configured database and brings its schema up to date.
pub async fn open_desk(config: &Config) -> anyhow::Result<Desk> {
    let shown = opsdesk_store::db::redact_url(&config.database.url);
    let db = Db::connect(
        &config.database.url,
        &DbOptions {
            max_connections: config.database.max_connections,
            ..DbOptions::default()
        },
    )
    .await
    .with_context(|| format!("cannot open the database {shown}"))?;
    db.migrate()
        .await
        .with_context(|| format!("cannot migrate the database {shown}"))?;
    let ingest = config.ingest.settings().map_err(anyhow::Error::msg)?;
    let notify = config.notify.settings().map_err(anyhow::Error::msg)?;
    let sla = config.sla.settings().map_err(anyhow::Error::msg)?;
    let kpis = config.kpis.settings().map_err(anyhow::Error::msg)?;
    let readiness = config.readiness.settings().map_err(anyhow::Error::msg)?;
    let mail = config
        .email
        .settings(&config.notify)
        .map_err(anyhow::Error::msg)?;
    let reports = config
        .reports
        .schedules(&config.notify)
        .map_err(anyhow::Error::msg)?;
    let escalation = config
        .escalation
        .settings(&config.notify)
        .map_err(anyhow::Error::msg)?;
    let policy = config.attachments.policy().map_err(anyhow::Error::msg)?;
    let blobs: Arc<dyn opsdesk_core::attachments::Blobs> = match &config.attachments.s3 {
        Some(s3) => Arc::new(opsdesk_aws::files::S3Blobs::new(s3).await),
        None => Arc::new(opsdesk_core::attachments::LocalBlobs::new(
            config.attachments.folder(&config.database.url),
        )),
    };
    tracing::debug!(store = %blobs.describe(), "ticket files");
    let desk = Desk::new(db, Arc::new(SystemClock))
        .with_attachment_settings(opsdesk_core::attachments::AttachmentSettings {
            policy,
            blobs: Some(blobs),
        })
        .with_auth_settings(config.auth.settings())
        .with_ingest_settings(ingest)
        .with_notify_settings(notify)
        .with_aws_accounts(config.aws.accounts().map_err(anyhow::Error::msg)?)
        .with_sla_settings(sla)
        .with_escalation_settings(escalation)
        .with_kpi_settings(kpis)
        .with_readiness_settings(readiness)
        .with_mail_settings(mail)
        .with_report_schedules(reports)
        .with_connectors(config.connector_remotes().map_err(anyhow::Error::msg)?);
    desk.seed_readiness()
        .await
        .with_context(|| format!("cannot keep the built-in readiness lens in {shown}"))?;
    Ok(desk)
}

/// Resolves on SIGTERM or SIGINT. The handlers are in place as soon as this returns, before
/// the future is first polled, so a signal sent the moment the server says it is up (while it
/// is still starting its tasks) stops it gracefully rather than killing it.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let streams = {
        use tokio::signal::unix::{signal, SignalKind};
        let listen = |kind: SignalKind, name: &'static str| match signal(kind) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for {name}");
                None
            }
        };
        (
            listen(SignalKind::terminate(), "SIGTERM"),
            listen(SignalKind::interrupt(), "SIGINT"),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let (term, int) = streams;
            tokio::select! {
                () = received(term) => {},
                () = received(int) => {},
            }
        }
        #[cfg(not(unix))]
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    }
}

/// Resolves when `signal` arrives; never when there is no handler for it.
#[cfg(unix)]
async fn received(signal: Option<tokio::signal::unix::Signal>) {
    match signal {
        Some(mut s) => {
            s.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}

/// Runs the server until `shutdown` resolves; in-flight requests then get the grace period.
pub async fn serve(
    config: &Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    for (i, queue) in config.ingest.sqs.iter().enumerate() {
        queue
            .validate()
            .map_err(|e| anyhow::anyhow!("ingest.sqs[{i}].{e}"))?;
    }
    let desk = open_desk(config).await?;
    for warning in desk.plan_warnings().await? {
        tracing::warn!("{}", warning.text);
    }
    let addr = listener.local_addr()?;
    if let Some(secret) = desk.bootstrap_admin_token().await? {
        // stdout, not the log: the secret must never reach log storage.
        println!(
            "opsdesk: this is a new database; created the admin API token \"first-admin\".\n\
             It is shown only this once. Keep it somewhere safe:\n{secret}\n\
             opsdesk: make your admin account in the browser at http://{addr}/setup with that token."
        );
    }
    println!("opsdesk: open http://{addr}/ in a browser");
    tracing::info!(
        backend = desk.db().backend().as_str(),
        database = %opsdesk_store::db::redact_url(&config.database.url),
        "listening on http://{addr}"
    );
    let background = tokio_util::sync::CancellationToken::new();
    let _stop_background = background.clone().drop_guard();
    let node = config.server.node_name();
    if !(3..=3600).contains(&config.server.job_lease_secs) {
        anyhow::bail!("server.job_lease_secs must be 3 to 3600");
    }
    let leases = Leases::new(
        desk.clone(),
        node.clone(),
        Duration::from_secs(config.server.job_lease_secs),
    );
    tracing::info!(node = %node, "jobs that run on one node at a time are leased to one node");
    spawn_ingest(config, &desk, &leases, &background);
    let d = desk.clone();
    leases.spawn("sign_in_purge", background.clone(), move |stop| {
        purge_sign_in_state(d.clone(), stop)
    });
    let d = desk.clone();
    leases.spawn("clock_watcher", background.clone(), move |stop| {
        watch_clocks(d.clone(), stop)
    });
    let d = desk.clone();
    leases.spawn("aws_support_cases", background.clone(), move |stop| {
        work_on_cases(d.clone(), stop)
    });
    let d = desk.clone();
    leases.spawn("kpis_and_reports", background.clone(), move |stop| {
        evaluate_kpis(d.clone(), stop)
    });
    let d = desk.clone();
    leases.spawn("readiness", background.clone(), move |stop| {
        watch_readiness(d.clone(), stop)
    });
    let retention = config.ingest.retention().map_err(anyhow::Error::msg)?;
    let d = desk.clone();
    leases.spawn("retention", background.clone(), move |stop| {
        purge_retained(d.clone(), retention, stop)
    });
    let channels = channels(config)?;
    tokio::spawn(opsdesk_notify::dispatcher::run(
        desk.clone(),
        channels,
        background.clone(),
    ));
    let stopping = Arc::new(Notify::new());
    let notify = stopping.clone();
    let graceful = async move {
        shutdown.await;
        tracing::info!("shutting down: finishing requests in flight");
        notify.notify_one();
    };
    let db = desk.db().clone();
    let mut state = AppState::new(desk);
    state.node = node.into();
    state.secure_cookies = config.auth.secure_cookies;
    state.trusted_proxies = config
        .server
        .trusted_proxies()
        .map_err(anyhow::Error::msg)?
        .into();
    state.sign_in_limiter = Arc::new(opsdesk_web::throttle::AddressLimiter::per_minute(
        config.auth.sign_in_requests_per_minute,
    ));
    if let Some(settings) = config.oidc.settings().map_err(anyhow::Error::msg)? {
        let sso = opsdesk_web::sso::Sso::discover(settings)
            .await
            .map_err(|e| anyhow::anyhow!("single sign-on: {e}"))?;
        state.sso = Some(Arc::new(sso));
        state.sso_only = config.oidc.sso_only;
        tracing::info!(issuer = %config.oidc.issuer_url, "single sign-on is on");
    }
    if !config.ingest.sns.topics.is_empty() {
        state.sns = Some(Arc::new(sns_ingest(config)?));
        tracing::info!(topics = ?config.ingest.sns.topics, "SNS subscriptions are accepted");
    }
    let server = opsdesk_web::serve(listener, state, graceful);
    let grace = Duration::from_secs(config.server.shutdown_grace_secs);
    tokio::select! {
        res = server => res.context("the server failed")?,
        () = async { stopping.notified().await; tokio::time::sleep(grace).await } => {
            tracing::warn!("grace period over; dropping requests still in flight");
        }
    }
    // The jobs stop and give their leases up while the database is still open, so another
    // node takes them at once.
    background.cancel();
    leases.stopped(Duration::from_secs(10)).await;
    db.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Every ten minutes, deletes sign-in state that can no longer be used, so those tables stay
/// small. It runs on the node holding its lease (crate::jobs); deleting twice is harmless.
async fn purge_sign_in_state(desk: Desk, stop: tokio_util::sync::CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(600));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        match desk.purge_sign_in_state().await {
            Ok((sessions, failures, sso)) if sessions + failures + sso > 0 => {
                tracing::info!(sessions, failures, sso, "purged ended sign-in state");
            }
            Ok(_) => {}
            Err(e) => {
                if desk.db().is_closed() {
                    return;
                }
                tracing::warn!(error = %e, "purging ended sign-in state failed");
            }
        }
    }
}

/// Rows deleted per statement by the retention job, so that no write holds the database long.
const PURGE_BATCH: i64 = 5_000;

/// Every hour (and a minute after start), deletes the signals and delivery receipts older than
/// `ingest.signal_retention_days` / `ingest.receipt_retention_days`, in batches. It runs on the
/// node holding its lease (crate::jobs); two at once would only delete the same rows.
async fn purge_retained(
    desk: Desk,
    (signals, receipts): (Option<chrono::Duration>, chrono::Duration),
    stop: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(60),
        Duration::from_secs(3600),
    );
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = desk.now();
        let db = desk.db();
        let mut removed = (0u64, 0u64);
        loop {
            if stop.is_cancelled() {
                return;
            }
            let s = match signals {
                Some(keep) => db.purge_signals(now - keep, PURGE_BATCH).await,
                None => Ok(0),
            };
            let r = db.purge_receipts(now - receipts, PURGE_BATCH).await;
            match (s, r) {
                (Ok(s), Ok(r)) => {
                    removed = (removed.0 + s, removed.1 + r);
                    if s < PURGE_BATCH as u64 && r < PURGE_BATCH as u64 {
                        break;
                    }
                }
                (Err(e), _) | (_, Err(e)) => {
                    if db.is_closed() {
                        return;
                    }
                    tracing::warn!(error = %e, "purging old signals failed");
                    break;
                }
            }
        }
        if removed != (0, 0) {
            tracing::info!(
                signals = removed.0,
                receipts = removed.1,
                "purged old signals and receipts"
            );
        }
    }
}

/// Every second, looks at the tickets whose SLA or escalation clocks are due. It runs on the
/// node holding its lease (crate::jobs) and is safe on two at once: every look locks its ticket and announces each event once.
async fn watch_clocks(desk: Desk, stop: tokio_util::sync::CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        // A full pass may leave more due (a burst of new tickets): go on at once.
        loop {
            match desk.watch_clocks().await {
                Ok(n) if n >= opsdesk_core::escalation::WATCH_BATCH => {}
                Ok(_) => break,
                Err(e) => {
                    if desk.db().is_closed() {
                        return;
                    }
                    tracing::warn!(error = %e, "checking ticket clocks failed");
                    break;
                }
            }
        }
    }
}

/// Every ten seconds, evaluates the KPIs whose interval has passed and sends the scheduled
/// reports whose period has ended. It runs on the node holding its lease (crate::jobs) and is safe
/// on two at once: an evaluation is stored once, by the
/// node that locks the KPI's row first, and a report is queued once per period.
async fn evaluate_kpis(desk: Desk, stop: tokio_util::sync::CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = desk.evaluate_kpis(false).await {
            if desk.db().is_closed() {
                return;
            }
            tracing::warn!(error = %e, "evaluating KPIs failed");
        }
        if let Err(e) = desk.deliver_reports().await {
            if desk.db().is_closed() {
                return;
            }
            tracing::warn!(error = %e, "sending scheduled reports failed");
        }
    }
}

/// Every thirty seconds, opens the post-incident reviews resolved incidents call for and the
/// reviews schedules call for, and announces due and overdue reviews and action items. It runs on
/// the node holding its lease (crate::jobs) and is safe on two at once: every step is claimed once in the database.
async fn watch_readiness(desk: Desk, stop: tokio_util::sync::CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(30));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = desk.watch_readiness().await {
            if desk.db().is_closed() {
                return;
            }
            tracing::warn!(error = %e, "the readiness pass failed");
        }
    }
}

/// Every two seconds, opens and follows the AWS Support cases escalations asked for; every ten
/// minutes, asks AWS again which case severities the known accounts have when the answer kept
/// is a day old. The AWS Support client is made from the AWS SDK's environment when the first
/// case is due or the first account is known, so a desk with no AWS account never reads it.
async fn work_on_cases(desk: Desk, stop: tokio_util::sync::CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let client = tokio::sync::OnceCell::new();
    // What AWS offers each account is asked again once it is a day old (see
    // Desk::refresh_severity_levels); looked at every ten minutes, and only when accounts exist.
    let mut levels_checked: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        if levels_checked.is_none_or(|t| t.elapsed() >= Duration::from_secs(600)) {
            levels_checked = Some(tokio::time::Instant::now());
            let known = match desk.db().aws_accounts().await {
                Ok(stored) => !stored.is_empty() || desk.has_configured_aws_accounts(),
                Err(_) => false,
            };
            if known {
                let aws = client
                    .get_or_init(opsdesk_aws::support::SupportClient::from_env)
                    .await;
                if let Err(e) = desk.refresh_severity_levels(aws).await {
                    if desk.db().is_closed() {
                        return;
                    }
                    tracing::warn!(error = %e, "asking AWS which case severities the accounts have failed");
                }
            }
        }
        match desk.db().support_cases_due(desk.now()).await {
            Ok(false) => continue,
            Ok(true) => {}
            Err(e) => {
                if desk.db().is_closed() {
                    return;
                }
                tracing::warn!(error = %e, "reading due AWS Support cases failed");
                continue;
            }
        }
        let aws = client
            .get_or_init(opsdesk_aws::support::SupportClient::from_env)
            .await;
        if let Err(e) = desk.sync_cases(aws).await {
            if desk.db().is_closed() {
                return;
            }
            tracing::warn!(error = %e, "working on AWS Support cases failed");
        }
    }
}

/// The channels notifications go out through: webhooks always, email when `[notify.smtp]`
/// is set, SNS through the AWS SDK's environment.
pub fn channels(config: &Config) -> anyhow::Result<opsdesk_notify::Channels> {
    let clock: Arc<dyn opsdesk_core::Clock> = Arc::new(SystemClock);
    let http = opsdesk_notify::HttpClient::new(config.notify.allow_private_addresses)
        .map_err(|e| anyhow::anyhow!("cannot build the HTTP client for webhooks: {e}"))?;
    let mut channels = opsdesk_notify::Channels::new(http, clock.clone());
    if let Some(smtp) = &config.notify.smtp {
        channels = channels
            .with_smtp(smtp, clock)
            .map_err(|e| anyhow::anyhow!("notify.smtp.{}: {}", e.field, e.message))?;
    }
    channels = channels.with_reply_to(config.email.reply_to().map_err(anyhow::Error::msg)?);
    // SNS channels can be added through the API at any time; the publisher reads the AWS
    // environment (region, credentials) when the first SNS message goes out.
    Ok(channels.with_sns_from_env())
}

/// Starts the SQS consumers and the AWS pollers the configuration asks for.
fn spawn_ingest(
    config: &Config,
    desk: &Desk,
    leases: &Leases,
    stop: &tokio_util::sync::CancellationToken,
) {
    for remote in desk.connector_remotes() {
        tokio::spawn(opsdesk_connectors::run(desk.clone(), remote, stop.clone()));
    }
    for inbox in &config.email.inboxes {
        tokio::spawn(opsdesk_mail::imap::run(
            desk.clone(),
            inbox.clone(),
            stop.clone(),
        ));
    }
    for queue in &config.ingest.sqs {
        tracing::info!(queue = %queue.queue_url, "consuming SQS queue");
        tokio::spawn(opsdesk_aws::sqs::run(
            desk.clone(),
            queue.clone(),
            stop.clone(),
        ));
    }
    // AWS throttles these APIs per account: one node polls.
    if config.ingest.health.enabled {
        let (d, c) = (desk.clone(), config.ingest.health.clone());
        leases.spawn("aws_health_poller", stop.clone(), move |stop| {
            opsdesk_aws::health::run_health(d.clone(), c.clone(), stop)
        });
    }
    if config.ingest.trusted_advisor.enabled {
        let (d, c) = (desk.clone(), config.ingest.trusted_advisor.clone());
        leases.spawn("trusted_advisor_poller", stop.clone(), move |stop| {
            opsdesk_aws::trusted_advisor::run_trusted_advisor(d.clone(), c.clone(), stop)
        });
    }
}

fn sns_ingest(config: &Config) -> anyhow::Result<opsdesk_web::api::sns::SnsIngest> {
    let source = opsdesk_aws::sns::HttpsCertificateSource::new()
        .context("cannot build the HTTPS client for SNS certificates")?;
    let verifier = opsdesk_aws::sns::Verifier::new(&config.ingest.sns, Arc::new(source))
        .map_err(|e| anyhow::anyhow!("ingest.sns: {e}"))?;
    let http = reqwest::Client::builder()
        .https_only(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .context("cannot build the HTTPS client for SNS confirmations")?;
    Ok(opsdesk_web::api::sns::SnsIngest { verifier, http })
}
