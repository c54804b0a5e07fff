-- A user's granted roles are staff roles only (their account type is `user_type`): public-api
-- refuses to sign in an account holding a name that is no role, so no such name may be stored.
ALTER TABLE users ADD CONSTRAINT users_roles_known
    CHECK (roles <@ ARRAY['caseworker', 'admin', 'compliance_officer']::text[]);
