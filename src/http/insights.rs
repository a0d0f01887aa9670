//! `GET /insights`: the statements of `pg_stat_statements` that take the
//! longest on average, as the reference reports them, but as a JSON object
//! (the reference sends the document as a JSON string), and 404 with the
//! reason when the extension is not installed (the reference answers an
//! invalid document).

use super::error::ApiError;
use super::routes::Handled;
use super::Api;
use crate::driver::Request;
use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Reply;

fn reject(e: ApiError) -> warp::Rejection {
    warp::reject::custom(e)
}

/// The 100 statements of users other than the superuser with the highest
/// mean planning and execution time.
pub(super) async fn insights(api: Api) -> Handled {
    let connector = api
        .handle
        .request(|reply| Request::ConnectRunning { reply })
        .await
        .map_err(|e| reject(e.into()))?;
    let db = connector.maintenance_db().to_string();
    let client = connector
        .connect(&db)
        .await
        .map_err(|e| reject(ApiError::internal(&e)))?;
    let failed = |e: tokio_postgres::Error| {
        reject(ApiError::internal(
            &anyhow::Error::new(e).context("reading pg_stat_statements"),
        ))
    };
    let schema = client
        .query_opt(
            "SELECT n.nspname FROM pg_catalog.pg_extension e \
             JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace \
             WHERE e.extname = 'pg_stat_statements'",
            &[],
        )
        .await
        .map_err(failed)?;
    let Some(schema) = schema else {
        return Err(reject(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("pg_stat_statements is not installed in database {db:?} (CREATE EXTENSION pg_stat_statements)"),
        )));
    };
    let schema: String = schema.get(0);
    let sql = format!(
        "SELECT pg_catalog.row_to_json(s)::text FROM {}.pg_stat_statements s \
         WHERE s.userid OPERATOR(pg_catalog.<>) (SELECT oid FROM pg_catalog.pg_roles WHERE rolname = session_user) \
         ORDER BY (s.mean_exec_time OPERATOR(pg_catalog.+) s.mean_plan_time) DESC LIMIT 100",
        postgres_protocol::escape::escape_identifier(&schema)
    );
    let rows = match client.query(&sql, &[]).await {
        Ok(rows) => rows,
        // Installed, but its library is not loaded.
        Err(e)
            if e.code()
                == Some(&tokio_postgres::error::SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE) =>
        {
            let why = e
                .as_db_error()
                .map(|d| d.message().to_string())
                .unwrap_or_default();
            return Err(reject(ApiError::new(StatusCode::NOT_FOUND, why)));
        }
        Err(e) => return Err(failed(e)),
    };
    let mut statements = Vec::with_capacity(rows.len());
    for row in rows {
        let text: String = row.get(0);
        let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            reject(ApiError::internal(
                &anyhow::Error::new(e).context("a row of pg_stat_statements"),
            ))
        })?;
        statements.push(value);
    }
    Ok(warp::reply::json(&json!({ "pg_stat_statements": statements })).into_response())
}
