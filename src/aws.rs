//! The one place that loads AWS configuration for every client: the standard credential chain,
//! `--region` / `AWS_REGION`, `--profile` / `AWS_PROFILE`, and `--endpoint-url` /
//! `AWS_ENDPOINT_URL` (how the tests reach the local emulators).
//!
//! The SDK's own retries are turned off: rehydrate retries per event (only the failed entries of
//! a batch) and counts every attempt in `outcomes`, which SDK-level retries would hide.

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::ProvideCredentials;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use clap::Args;

/// Flags shared by every command that talks to AWS.
#[derive(Debug, Clone, Args)]
pub struct AwsArgs {
    /// AWS region [default: from AWS_REGION or the profile].
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// Named profile from ~/.aws/config [default: AWS_PROFILE or default].
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// Send requests to this endpoint instead of AWS (e.g. a local emulator) [env: AWS_ENDPOINT_URL].
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// Seconds one request may take before it counts as a retryable timeout (1 to 3600).
    #[arg(long, default_value_t = 30, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub request_timeout: u64,
}

/// Loads the configuration and, unless this is a dry run (which sends nothing), checks that
/// requests can be signed before any work starts.
pub async fn connect(args: &AwsArgs, dry_run: bool) -> crate::Result<SdkConfig> {
    let config = load(args).await;
    if !dry_run {
        check(&config).await?;
    }
    Ok(config)
}

/// Loads the shared SDK configuration.
pub async fn load(args: &AwsArgs) -> SdkConfig {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https();
    // Each attempt is one operation (the SDK does not retry), so both timeouts are the same: a
    // server that accepts and never answers ends in a retryable `Timeout`, not a hang.
    let timeout = std::time::Duration::from_secs(args.request_timeout);
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(timeout.min(std::time::Duration::from_secs(10)))
        .operation_attempt_timeout(timeout)
        .operation_timeout(timeout)
        .build();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .retry_config(RetryConfig::disabled())
        .timeout_config(timeouts);
    if let Some(region) = &args.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(profile) = &args.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(url) = &args.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

/// Checks, before any event is read, that requests can be signed: a region is set and the
/// credential chain yields credentials. Without this every event would fail on its own.
pub async fn check(config: &SdkConfig) -> crate::Result<()> {
    if config.region().is_none() {
        return Err(crate::Error::usage(
            "no AWS region: pass --region, set AWS_REGION, or set a region in your profile",
        ));
    }
    let Some(provider) = config.credentials_provider() else {
        return Err(crate::Error::Target {
            target: "AWS credentials".into(),
            message: "no credential provider is configured".into(),
        });
    };
    provider.provide_credentials().await.map_err(|e| crate::Error::Target {
        target: "AWS credentials".into(),
        message: format!("{e}; set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, pass --profile, or run aws sso login"),
    })?;
    Ok(())
}
