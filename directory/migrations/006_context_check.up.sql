-- How the policies check the tenant context, for the whole installation:
-- 'signed' (the default) or 'unsigned' (migration.ContextCheck). The
-- verifier in each database is the truth of what is in force; this row is
-- what every database should say, which Landlord brings them to.
ALTER TABLE installation
	ADD COLUMN context_check text NOT NULL DEFAULT 'signed' CHECK (context_check IN ('signed', 'unsigned'));
