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

impl AwsArgs {
    /// No flags: the region, profile and endpoint come from the environment (AWS_REGION,
    /// AWS_PROFILE, AWS_ENDPOINT_URL), as for every AWS CLI command.
    pub fn from_env() -> Self {
        Self {
            region: None,
            profile: None,
            endpoint_url: None,
            request_timeout: 30,
        }
    }
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

/// Credentials from the SDK's chain, kept until five minutes before they expire (the chain
/// itself does not cache: a profile with SSO or a role would be asked on every request).
#[derive(Debug)]
pub struct CachedCredentials {
    provider: aws_credential_types::provider::SharedCredentialsProvider,
    cached: tokio::sync::Mutex<Option<aws_credential_types::Credentials>>,
}

impl CachedCredentials {
    pub fn new(provider: aws_credential_types::provider::SharedCredentialsProvider) -> Self {
        Self {
            provider,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    pub async fn get(&self) -> Result<aws_credential_types::Credentials, String> {
        use std::time::{Duration, SystemTime};
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref() {
            if c.expiry()
                .is_none_or(|e| e > SystemTime::now() + Duration::from_secs(300))
            {
                return Ok(c.clone());
            }
        }
        let c = self.provider.provide_credentials().await.map_err(|e| e.to_string())?;
        *cached = Some(c.clone());
        Ok(c)
    }
}

#[async_trait::async_trait]
impl object_store::CredentialProvider for CachedCredentials {
    type Credential = object_store::aws::AwsCredential;

    async fn get_credential(&self) -> object_store::Result<std::sync::Arc<Self::Credential>> {
        let c = self.get().await.map_err(|e| object_store::Error::Generic {
            store: "S3",
            source: format!("AWS credentials: {e}").into(),
        })?;
        Ok(std::sync::Arc::new(object_store::aws::AwsCredential {
            key_id: c.access_key_id().to_owned(),
            secret_key: c.secret_access_key().to_owned(),
            token: c.session_token().map(str::to_owned),
        }))
    }
}

/// The bucket and key of `s3://bucket/key` given to `flag`, or a usage error that says what to
/// write.
pub fn s3_location<'a>(flag: &str, url: &'a str) -> crate::Result<(&'a str, &'a str)> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| crate::Error::usage(format!("{flag} {url}: must be an S3 prefix, s3://bucket/prefix/")))?;
    match rest.split_once('/').unwrap_or((rest, "")) {
        ("", _) => Err(crate::Error::usage(format!(
            "{flag} {url}: name a bucket, e.g. s3://my-bucket/events/"
        ))),
        (bucket, key) => Ok((bucket, key)),
    }
}

/// An S3 bucket as an object store, from the same configuration as every SDK client: the
/// credential chain, the region, and the endpoint (`--endpoint-url`, `AWS_ENDPOINT_URL_S3`,
/// `AWS_ENDPOINT_URL`). A custom endpoint (an emulator, MinIO) is addressed path-style.
pub fn s3_store(config: &SdkConfig, bucket: &str) -> crate::Result<std::sync::Arc<dyn object_store::ObjectStore>> {
    let Some(provider) = config.credentials_provider() else {
        return Err(crate::Error::usage(format!(
            "s3://{bucket}: no AWS credentials are configured; set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or pass --profile"
        )));
    };
    let region = config
        .region()
        .map_or_else(|| "us-east-1".to_owned(), |r| r.to_string());
    let mut builder = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name(bucket)
        .with_region(region)
        .with_credentials(std::sync::Arc::new(CachedCredentials::new(provider)))
        .with_retry(object_store::RetryConfig {
            max_retries: 4,
            ..Default::default()
        });
    let endpoint = std::env::var("AWS_ENDPOINT_URL_S3")
        .ok()
        .filter(|e| !e.is_empty())
        .or_else(|| config.endpoint_url().map(str::to_owned));
    if let Some(endpoint) = endpoint {
        builder = builder
            .with_allow_http(endpoint.starts_with("http://"))
            .with_endpoint(endpoint)
            .with_virtual_hosted_style_request(false);
    }
    builder
        .build()
        .map(|s| std::sync::Arc::new(s) as _)
        .map_err(|e| crate::Error::Target {
            target: format!("s3://{bucket}"),
            message: e.to_string(),
        })
}
