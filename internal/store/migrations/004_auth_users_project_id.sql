-- Resync reads an auth project's users in id order, batch by batch.
CREATE INDEX auth_users_project_id_idx ON auth_users (auth_project_id, id);
