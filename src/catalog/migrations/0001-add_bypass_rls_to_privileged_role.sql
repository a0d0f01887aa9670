-- The privileged role bypasses row-level security (the reference's id 1).
ALTER ROLE {privileged_role} BYPASSRLS;
