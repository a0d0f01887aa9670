-- Statistics and monitoring views; members may pass them on. The reference's id 4.
GRANT pg_monitor TO {privileged_role} WITH ADMIN OPTION;
