-- SQLite only, the sixth version: times were RFC 3339 with trailing zeros of the fraction cut, so text order was not time order. Pad every stored time to nine fraction digits, the form the store now writes.
UPDATE tenants SET created_at = CASE WHEN substr(created_at, 20, 1) = '.'
	THEN substr(created_at, 1, 20) || substr(substr(created_at, 21, length(created_at) - 21) || '000000000', 1, 9) || 'Z'
	ELSE substr(created_at, 1, 19) || '.000000000Z' END;
UPDATE api_keys SET created_at = CASE WHEN substr(created_at, 20, 1) = '.'
	THEN substr(created_at, 1, 20) || substr(substr(created_at, 21, length(created_at) - 21) || '000000000', 1, 9) || 'Z'
	ELSE substr(created_at, 1, 19) || '.000000000Z' END, revoked_at = CASE WHEN substr(revoked_at, 20, 1) = '.'
	THEN substr(revoked_at, 1, 20) || substr(substr(revoked_at, 21, length(revoked_at) - 21) || '000000000', 1, 9) || 'Z'
	ELSE substr(revoked_at, 1, 19) || '.000000000Z' END;
UPDATE charges SET time = CASE WHEN substr(time, 20, 1) = '.'
	THEN substr(time, 1, 20) || substr(substr(time, 21, length(time) - 21) || '000000000', 1, 9) || 'Z'
	ELSE substr(time, 1, 19) || '.000000000Z' END;
UPDATE budget_changes SET time = CASE WHEN substr(time, 20, 1) = '.'
	THEN substr(time, 1, 20) || substr(substr(time, 21, length(time) - 21) || '000000000', 1, 9) || 'Z'
	ELSE substr(time, 1, 19) || '.000000000Z' END;
