-- Reference data of the whole platform, not of one store: the currencies
-- prices are in and the countries orders ship to. Every store reads them
-- (a synchronized copy in stores with a database of their own); only the
-- platform's administration writes them; orders reference them.
CREATE TABLE currencies (
	code        char(3)  PRIMARY KEY CHECK (code ~ '^[A-Z]{3}$'),
	name        text     NOT NULL,
	minor_units smallint NOT NULL CHECK (minor_units BETWEEN 0 AND 4)
);

CREATE TABLE countries (
	code char(2) PRIMARY KEY CHECK (code ~ '^[A-Z]{2}$'),
	name text    NOT NULL
);

INSERT INTO currencies (code, name, minor_units) VALUES
	('EUR', 'Euro', 2), ('USD', 'US dollar', 2), ('GBP', 'Pound sterling', 2),
	('CHF', 'Swiss franc', 2), ('SEK', 'Swedish krona', 2), ('JPY', 'Yen', 0);

INSERT INTO countries (code, name) VALUES
	('AT', 'Austria'), ('BE', 'Belgium'), ('CH', 'Switzerland'), ('DE', 'Germany'),
	('DK', 'Denmark'), ('ES', 'Spain'), ('FI', 'Finland'), ('FR', 'France'),
	('GB', 'United Kingdom'), ('IE', 'Ireland'), ('IT', 'Italy'), ('JP', 'Japan'),
	('NL', 'Netherlands'), ('NO', 'Norway'), ('PL', 'Poland'), ('PT', 'Portugal'),
	('SE', 'Sweden'), ('US', 'United States');
