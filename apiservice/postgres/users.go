package postgres

import (
	"context"
	"fmt"
	"time"
)

// User is an account.
type User struct {
	ID           int64
	Username     string
	Email        string
	PasswordHash string // bcrypt
	Superuser    bool
	CreatedAt    time.Time // UTC
}

// userRow is the GORM model of the users table: User's fields, as a
// separate type so that User stays plain data.
type userRow User

func (userRow) TableName() string { return "users" }

func (r userRow) user() User {
	r.CreatedAt = r.CreatedAt.UTC()
	return User(r)
}

// CreateUser inserts u (ID and CreatedAt are set by the store) and returns
// it. A taken username gives an error wrapping ErrDuplicate.
func (db *DB) CreateUser(ctx context.Context, u User) (User, error) {
	row := userRow{
		Username:     u.Username,
		Email:        u.Email,
		PasswordHash: u.PasswordHash,
		Superuser:    u.Superuser,
	}
	if err := db.gorm.WithContext(ctx).Create(&row).Error; err != nil {
		return User{}, wrapErr(fmt.Sprintf("create user %q", u.Username), err)
	}
	return row.user(), nil
}

// UserByName finds a user by exact username; ErrNotFound if none.
func (db *DB) UserByName(ctx context.Context, username string) (User, error) {
	var row userRow
	if err := db.gorm.WithContext(ctx).Where("username = ?", username).Take(&row).Error; err != nil {
		return User{}, wrapErr(fmt.Sprintf("find user %q", username), err)
	}
	return row.user(), nil
}

// UserByID finds a user by id; ErrNotFound if none.
func (db *DB) UserByID(ctx context.Context, id int64) (User, error) {
	var row userRow
	if err := db.gorm.WithContext(ctx).Take(&row, id).Error; err != nil {
		return User{}, wrapErr(fmt.Sprintf("find user %d", id), err)
	}
	return row.user(), nil
}
