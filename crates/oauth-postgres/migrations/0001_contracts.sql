-- oauth-postgres: the contracts a fleet of gateways enforces.
-- One row per (client, API); `scopes` is a space-separated list (NULL: any scope).
CREATE TABLE IF NOT EXISTS oauth_gateway_contracts (
    client_id text NOT NULL,
    api       text NOT NULL,
    scopes    text NULL,
    PRIMARY KEY (client_id, api)
);

-- Every change, whatever wrote it, tells the listening gateways to reload.
CREATE OR REPLACE FUNCTION oauth_gateway_contracts_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('oauth_gateway_contracts', '');
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS oauth_gateway_contracts_changed ON oauth_gateway_contracts;
CREATE TRIGGER oauth_gateway_contracts_changed
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON oauth_gateway_contracts
    FOR EACH STATEMENT EXECUTE FUNCTION oauth_gateway_contracts_changed();
