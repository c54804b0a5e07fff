-- A web sign-in is bound to the browser that started it: `/start` sets a pre-sign-in cookie
-- holding a random value, and the attempt stores its SHA-256; both callbacks require the cookie
-- whose hash matches, so a `code` and `state` from someone else's sign-in cannot complete in
-- this browser (login CSRF). Attempts started before this change have no binding and could
-- never complete: they are removed (each lasts ten minutes).
DELETE FROM oidc_logins;
ALTER TABLE oidc_logins ADD COLUMN browser_hash bytea NOT NULL CHECK (octet_length(browser_hash) = 32);
