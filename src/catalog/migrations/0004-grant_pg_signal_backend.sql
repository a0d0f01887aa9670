-- Cancel and terminate other (non-superuser) sessions.
GRANT pg_signal_backend TO {privileged_role} WITH ADMIN OPTION;
