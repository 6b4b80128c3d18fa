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

// userRow is the GORM model of the users table.
type userRow struct {
	ID           int64 `gorm:"primaryKey"`
	Username     string
	Email        string
	PasswordHash string
	Superuser    bool
	CreatedAt    time.Time
}

func (userRow) TableName() string { return "users" }

func (r userRow) user() User {
	return User{
		ID:           r.ID,
		Username:     r.Username,
		Email:        r.Email,
		PasswordHash: r.PasswordHash,
		Superuser:    r.Superuser,
		CreatedAt:    r.CreatedAt.UTC(),
	}
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
