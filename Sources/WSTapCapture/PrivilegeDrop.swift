#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Gives up root after the capture device is open, as `tcpdump -Z` does.
public enum PrivilegeDrop {
    /// Switches to `user`'s uid, gid and groups; throws if any step fails or root could be regained.
    public static func switchUser(to user: String) throws(CaptureError) {
        guard let entry = getpwnam(user) else {
            throw .privilegeDropFailed(user: user, reason: "no such user")
        }
        let uid = entry.pointee.pw_uid, gid = entry.pointee.pw_gid
        guard initgroups(user, gid) == 0 else { throw .privilegeDropFailed(user: user, reason: "initgroups: \(String(cString: strerror(errno)))") }
        guard setgid(gid) == 0 else { throw .privilegeDropFailed(user: user, reason: "setgid: \(String(cString: strerror(errno)))") }
        guard setuid(uid) == 0 else { throw .privilegeDropFailed(user: user, reason: "setuid: \(String(cString: strerror(errno)))") }
        guard getuid() == uid, geteuid() == uid, getgid() == gid else {
            throw .privilegeDropFailed(user: user, reason: "the process still runs with other ids")
        }
        if uid != 0, setuid(0) == 0 {
            throw .privilegeDropFailed(user: user, reason: "root privileges could be regained")
        }
    }
}
