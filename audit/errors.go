package audit

import "errors"

// ErrFindings is wrapped by the error AsError returns when findings hold at
// least one error-severity finding: the installation breaks an isolation
// rule and should not serve tenant traffic as it is.
var ErrFindings = errors.New("isolation audit failed")

// ErrUnknownRole is returned by Run and Fleet when the configured app role
// does not exist: the audit would otherwise check nothing about the role that
// runs tenant traffic and report a clean result.
var ErrUnknownRole = errors.New("role does not exist")

// ErrNotTenantDatabase is returned by Run when Config.TenantDatabase is set
// but the database's name is not one Landlord derives from a tenant id
// (t_ and 32 hex digits), so its tenant role cannot be known.
var ErrNotTenantDatabase = errors.New("not a tenant database")

// ErrNoInstallation is returned by Fleet when the control database holds no
// Landlord directory (schema landlord).
var ErrNoInstallation = errors.New("no Landlord installation")
