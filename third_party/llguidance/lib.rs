// Empty: this crate exists only to pin llguidance; cargo builds it with `-p llguidance`.
