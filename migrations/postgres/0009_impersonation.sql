-- Impersonation: a session opened by an administrator acting as another user (one hour, no
-- refresh token); the access token's `act` claim and every audit entry name the administrator.
ALTER TABLE sessions ADD COLUMN impersonator_id uuid REFERENCES users (id) ON DELETE CASCADE;
