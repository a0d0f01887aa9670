-- Statistics and monitoring views; members may pass it on.
GRANT pg_monitor TO {privileged_role} WITH ADMIN OPTION;
