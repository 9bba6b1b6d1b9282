// Package grafana holds no code. The directory holds the Grafana
// dashboards for the syncer (dashboards/*.json) and their provisioning
// (provisioning/), which the compose file mounts into Grafana.
//
// Its tests keep the dashboards honest. They run every PostgreSQL panel
// query, with Grafana's macros and template variables expanded as Grafana
// would expand them, against a real migrated database filled with sample
// events. A panel whose SQL fails, or that shows nothing on data that
// should show something, fails a test. They also check that the
// Prometheus panels ask only for metrics the daemon exposes, and that the
// queries in docs/auditing.md still give the outputs printed there.
package grafana
