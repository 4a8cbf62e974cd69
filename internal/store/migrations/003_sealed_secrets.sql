-- Secrets the service must read back are sealed (AES-256-GCM under the master key, see
-- internal/sealbox and docs/security.md) into the *_sealed columns. The plaintext columns
-- they replace stay only for data directories made before this change: a step run at start,
-- after the migrations, seals what they still hold and sets them to NULL.
ALTER TABLE roles ADD COLUMN password_sealed text;

ALTER TABLE branches ADD COLUMN admin_password_sealed text;
ALTER TABLE branches ALTER COLUMN admin_password DROP NOT NULL;
ALTER TABLE branches ADD CONSTRAINT branches_admin_password_known
    CHECK (admin_password IS NOT NULL OR admin_password_sealed IS NOT NULL);

ALTER TABLE signing_keys ADD COLUMN private_sealed text;
ALTER TABLE signing_keys ALTER COLUMN private_der DROP NOT NULL;
ALTER TABLE signing_keys ADD CONSTRAINT signing_keys_private_known
    CHECK (private_der IS NOT NULL OR private_sealed IS NOT NULL);
