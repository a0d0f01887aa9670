-- Cancel and terminate other (non-superuser) sessions; members may pass it
-- on. The reference's id 12.
GRANT pg_signal_backend TO {privileged_role} WITH ADMIN OPTION;
