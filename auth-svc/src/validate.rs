//! Rules for user names and passwords.

/// 3 to 64 characters: ASCII letters, digits, `_`, `.`, `-`.
pub fn username(name: &str) -> Result<(), String> {
    let n = name.chars().count();
    if !(3..=64).contains(&n) {
        return Err("the user name must have 3 to 64 characters".into());
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
    {
        return Err("the user name may contain only letters, digits, `_`, `.` and `-`".into());
    }
    Ok(())
}

/// 8 to 72 bytes (bcrypt ignores anything past 72 bytes, so longer is refused, not truncated).
pub fn password(password: &str) -> Result<(), String> {
    let n = password.len();
    if n < 8 {
        return Err("the password must have at least 8 bytes".into());
    }
    if n > 72 {
        return Err("the password must have at most 72 bytes".into());
    }
    if password.contains('\0') {
        return Err("the password must not contain NUL characters".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn names() {
        assert!(super::username("ana").is_ok());
        assert!(super::username("a.b-c_9").is_ok());
        assert!(super::username("ab").is_err());
        assert!(super::username(&"a".repeat(65)).is_err());
        assert!(super::username("ana maría").is_err());
        assert!(super::username("x'; DROP TABLE").is_err());
    }

    #[test]
    fn passwords() {
        assert!(super::password("12345678").is_ok());
        assert!(super::password("1234567").is_err());
        assert!(super::password(&"é".repeat(36)).is_ok()); // 72 bytes
        assert!(super::password(&"é".repeat(37)).is_err()); // 74 bytes
    }
}
