/*
 * Linux system calls that Node.js has no API for: the credentials of a Unix
 * socket's peer (SO_PEERCRED, SO_PEERPIDFD), pidfd liveness checks, flock(2),
 * passwd lookups through NSS, and turning off core dumps and same-user
 * ptrace (prctl, setrlimit). Every function runs synchronously on the
 * calling thread and throws a JS Error whose `code` is the errno name
 * ("EBADF") and whose `syscall` names the failed call.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pwd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <node_api.h>

/* Linux 6.5 added SO_PEERPIDFD, but glibc 2.36 headers (Debian 12) lack it. */
#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

/* Linux 5.1 added pidfd_send_signal with number 424 on every architecture
 * that uses the unified syscall table (x86_64, aarch64, riscv64, ...). */
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif

#define PASSWD_BUFFER_MAX (1024 * 1024)

static const char *errno_name(int err) {
  switch (err) {
    case EACCES: return "EACCES";
    case EAGAIN: return "EAGAIN";
    case EBADF: return "EBADF";
    case EFAULT: return "EFAULT";
    case EINTR: return "EINTR";
    case EINVAL: return "EINVAL";
    case EIO: return "EIO";
    case EMFILE: return "EMFILE";
    case ENFILE: return "ENFILE";
    case ENOENT: return "ENOENT";
    case ENOLCK: return "ENOLCK";
    case ENOMEM: return "ENOMEM";
    case ENOPROTOOPT: return "ENOPROTOOPT";
    case ENOSYS: return "ENOSYS";
    case ENOTCONN: return "ENOTCONN";
    case ENOTSOCK: return "ENOTSOCK";
    case EPERM: return "EPERM";
    case ERANGE: return "ERANGE";
    case ESRCH: return "ESRCH";
    default: return "EUNKNOWN";
  }
}

/* Throws an Error shaped like Node's own system errors: code, errno, syscall. */
static void throw_errno(napi_env env, int err, const char *syscall_name) {
  char message[256];
  snprintf(message, sizeof message, "%s failed: %s (%s)", syscall_name, strerror(err), errno_name(err));

  napi_value code, text, error, errno_value, syscall_value;
  if (napi_create_string_utf8(env, errno_name(err), NAPI_AUTO_LENGTH, &code) != napi_ok) return;
  if (napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &text) != napi_ok) return;
  if (napi_create_error(env, code, text, &error) != napi_ok) return;

  /* Node reports errno as the negated C value (libuv convention). */
  napi_create_int32(env, -err, &errno_value);
  napi_set_named_property(env, error, "errno", errno_value);
  napi_create_string_utf8(env, syscall_name, NAPI_AUTO_LENGTH, &syscall_value);
  napi_set_named_property(env, error, "syscall", syscall_value);
  napi_throw(env, error);
}

/* Reads argument `index` as a non-negative int32 file descriptor, or throws a TypeError. */
static int get_fd_arg(napi_env env, napi_callback_info info, size_t index, int32_t *out) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return 0;

  napi_valuetype type = napi_undefined;
  if (argc > index) napi_typeof(env, argv[index], &type);
  if (type != napi_number || napi_get_value_int32(env, argv[index], out) != napi_ok || *out < 0) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "fd must be a non-negative integer");
    return 0;
  }
  return 1;
}

static napi_value make_uint32(napi_env env, uint32_t value) {
  napi_value result;
  napi_create_uint32(env, value, &result);
  return result;
}

static napi_value make_null(napi_env env) {
  napi_value result;
  napi_get_null(env, &result);
  return result;
}

static napi_value make_boolean(napi_env env, int value) {
  napi_value result;
  napi_get_boolean(env, value != 0, &result);
  return result;
}

/* peerCred(fd) -> {uid, gid, pid}: credentials the peer had when it called connect(). */
static napi_value peer_cred(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!get_fd_arg(env, info, 0, &fd)) return NULL;

  struct ucred cred;
  socklen_t length = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &length) != 0) {
    throw_errno(env, errno, "getsockopt(SO_PEERCRED)");
    return NULL;
  }

  napi_value result;
  napi_create_object(env, &result);
  napi_set_named_property(env, result, "uid", make_uint32(env, cred.uid));
  napi_set_named_property(env, result, "gid", make_uint32(env, cred.gid));
  napi_set_named_property(env, result, "pid", make_uint32(env, (uint32_t)cred.pid));
  return result;
}

/*
 * peerPidfd(fd) -> number | null: a pidfd (O_CLOEXEC) for the peer process, or
 * null when the kernel predates SO_PEERPIDFD. The caller must close it.
 */
static napi_value peer_pidfd(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!get_fd_arg(env, info, 0, &fd)) return NULL;

  int pidfd = -1;
  socklen_t length = sizeof pidfd;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &length) != 0) {
    int err = errno;
    if (err == ENOPROTOOPT || err == EINVAL) return make_null(env);
    throw_errno(env, err, "getsockopt(SO_PEERPIDFD)");
    return NULL;
  }

  napi_value result;
  napi_create_int32(env, pidfd, &result);
  return result;
}

/*
 * pidfdSendSignal0(pidfd) -> boolean: false once the process has been reaped.
 * EPERM (the peer runs as another user) still proves that the process exists,
 * so it returns true. A zombie also returns true: use pidfdHasExited for that.
 */
static napi_value pidfd_send_signal_0(napi_env env, napi_callback_info info) {
  int32_t pidfd;
  if (!get_fd_arg(env, info, 0, &pidfd)) return NULL;

  if (syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) == 0) return make_boolean(env, 1);

  int err = errno;
  if (err == ESRCH) return make_boolean(env, 0);
  if (err == EPERM) return make_boolean(env, 1);
  throw_errno(env, err, "pidfd_send_signal");
  return NULL;
}

/* pidfdHasExited(pidfd) -> boolean: a pidfd polls readable once the process has exited. */
static napi_value pidfd_has_exited(napi_env env, napi_callback_info info) {
  int32_t pidfd;
  if (!get_fd_arg(env, info, 0, &pidfd)) return NULL;

  struct pollfd entry = {.fd = pidfd, .events = POLLIN, .revents = 0};
  int ready;
  do {
    ready = poll(&entry, 1, 0);
  } while (ready < 0 && errno == EINTR);

  if (ready < 0) {
    throw_errno(env, errno, "poll");
    return NULL;
  }
  if (entry.revents & POLLNVAL) {
    throw_errno(env, EBADF, "poll");
    return NULL;
  }
  return make_boolean(env, ready > 0);
}

/* closeFd(fd): closes a descriptor that this addon returned. */
static napi_value close_fd(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!get_fd_arg(env, info, 0, &fd)) return NULL;

  /* Linux releases the descriptor even when close() reports EINTR, so never retry. */
  if (close(fd) != 0 && errno != EINTR) {
    throw_errno(env, errno, "close");
  }
  return NULL;
}

/* tryLockExclusive(fd) -> boolean: flock(LOCK_EX | LOCK_NB); false when another open file holds it. */
static napi_value try_lock_exclusive(napi_env env, napi_callback_info info) {
  int32_t fd;
  if (!get_fd_arg(env, info, 0, &fd)) return NULL;

  int status;
  do {
    status = flock(fd, LOCK_EX | LOCK_NB);
  } while (status != 0 && errno == EINTR);

  if (status == 0) return make_boolean(env, 1);
  if (errno == EWOULDBLOCK) return make_boolean(env, 0);
  throw_errno(env, errno, "flock");
  return NULL;
}

/*
 * protectMemory(): sets RLIMIT_CORE to 0 (soft and hard) so a crash writes no
 * core file, then clears the dumpable flag (PR_SET_DUMPABLE 0), which also
 * stops processes of the same user without CAP_SYS_PTRACE from attaching
 * with ptrace or reading /proc/self/mem and /proc/self/environ.
 */
static napi_value protect_memory(napi_env env, napi_callback_info info) {
  (void)info;
  struct rlimit none = {.rlim_cur = 0, .rlim_max = 0};
  if (setrlimit(RLIMIT_CORE, &none) != 0) {
    throw_errno(env, errno, "setrlimit(RLIMIT_CORE)");
    return NULL;
  }
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
    throw_errno(env, errno, "prctl(PR_SET_DUMPABLE)");
    return NULL;
  }
  return NULL;
}

/* isDumpable() -> boolean: the process's dumpable flag (PR_GET_DUMPABLE). */
static napi_value is_dumpable(napi_env env, napi_callback_info info) {
  (void)info;
  int dumpable = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
  if (dumpable < 0) {
    throw_errno(env, errno, "prctl(PR_GET_DUMPABLE)");
    return NULL;
  }
  return make_boolean(env, dumpable != 0);
}

/* getpwnam_r and getpwuid_r share this buffer-growing loop. */
typedef int (*passwd_lookup)(const void *key, struct passwd *entry, char *buffer, size_t size,
                             struct passwd **result);

static int lookup_by_name(const void *key, struct passwd *entry, char *buffer, size_t size,
                          struct passwd **result) {
  return getpwnam_r((const char *)key, entry, buffer, size, result);
}

static int lookup_by_uid(const void *key, struct passwd *entry, char *buffer, size_t size,
                         struct passwd **result) {
  return getpwuid_r(*(const uid_t *)key, entry, buffer, size, result);
}

/*
 * Runs one passwd lookup and converts the entry with `convert`. Returns null
 * when no such user exists; getpwnam(3) lists ENOENT, ESRCH, EBADF and EPERM
 * as other ways of saying "not found".
 */
static napi_value lookup_passwd(napi_env env, passwd_lookup lookup, const void *key, const char *syscall_name,
                                napi_value (*convert)(napi_env, const struct passwd *)) {
  long suggested = sysconf(_SC_GETPW_R_SIZE_MAX);
  size_t size = suggested > 0 ? (size_t)suggested : 16384;

  for (;;) {
    char *buffer = malloc(size);
    if (buffer == NULL) {
      throw_errno(env, ENOMEM, syscall_name);
      return NULL;
    }

    struct passwd entry;
    struct passwd *found = NULL;
    int err = lookup(key, &entry, buffer, size, &found);
    if (err == ERANGE && size < PASSWD_BUFFER_MAX) {
      free(buffer);
      size *= 2;
      continue;
    }

    napi_value result = NULL;
    if (err == 0 && found != NULL) {
      result = convert(env, found);
    } else if (err == 0 || err == ENOENT || err == ESRCH || err == EBADF || err == EPERM) {
      result = make_null(env);
    } else {
      throw_errno(env, err, syscall_name);
    }
    free(buffer);
    return result;
  }
}

static napi_value passwd_ids(napi_env env, const struct passwd *entry) {
  napi_value result;
  napi_create_object(env, &result);
  napi_set_named_property(env, result, "uid", make_uint32(env, entry->pw_uid));
  napi_set_named_property(env, result, "gid", make_uint32(env, entry->pw_gid));
  return result;
}

static napi_value passwd_name(napi_env env, const struct passwd *entry) {
  napi_value result;
  napi_create_string_utf8(env, entry->pw_name, NAPI_AUTO_LENGTH, &result);
  return result;
}

/* lookupUserByName(name) -> {uid, gid} | null */
static napi_value lookup_user_by_name(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_valuetype type = napi_undefined;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc >= 1) napi_typeof(env, argv[0], &type);

  char name[256];
  size_t length = 0;
  if (type != napi_string || napi_get_value_string_utf8(env, argv[0], name, sizeof name, &length) != napi_ok ||
      length == 0 || length >= sizeof name - 1 || strlen(name) != length) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", "name must be a non-empty string shorter than 255 bytes");
    return NULL;
  }
  return lookup_passwd(env, lookup_by_name, name, "getpwnam_r", passwd_ids);
}

/* lookupUserById(uid) -> string | null */
static napi_value lookup_user_by_id(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_valuetype type = napi_undefined;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc >= 1) napi_typeof(env, argv[0], &type);

  uint32_t uid;
  if (type != napi_number || napi_get_value_uint32(env, argv[0], &uid) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "uid must be a non-negative integer");
    return NULL;
  }
  uid_t key = (uid_t)uid;
  return lookup_passwd(env, lookup_by_uid, &key, "getpwuid_r", passwd_name);
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor properties[] = {
      {"peerCred", NULL, peer_cred, NULL, NULL, NULL, napi_enumerable, NULL},
      {"peerPidfd", NULL, peer_pidfd, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pidfdSendSignal0", NULL, pidfd_send_signal_0, NULL, NULL, NULL, napi_enumerable, NULL},
      {"pidfdHasExited", NULL, pidfd_has_exited, NULL, NULL, NULL, napi_enumerable, NULL},
      {"closeFd", NULL, close_fd, NULL, NULL, NULL, napi_enumerable, NULL},
      {"tryLockExclusive", NULL, try_lock_exclusive, NULL, NULL, NULL, napi_enumerable, NULL},
      {"lookupUserByName", NULL, lookup_user_by_name, NULL, NULL, NULL, napi_enumerable, NULL},
      {"lookupUserById", NULL, lookup_user_by_id, NULL, NULL, NULL, napi_enumerable, NULL},
      {"protectMemory", NULL, protect_memory, NULL, NULL, NULL, napi_enumerable, NULL},
      {"isDumpable", NULL, is_dumpable, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof properties / sizeof properties[0], properties) != napi_ok) {
    return NULL;
  }
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
