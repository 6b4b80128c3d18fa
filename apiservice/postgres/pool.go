package postgres

import "database/sql"

// SQL returns the connection pool underneath the store, for its
// statistics (sql.DBStats); queries go through the DB's methods.
func (db *DB) SQL() *sql.DB { return db.sql }
