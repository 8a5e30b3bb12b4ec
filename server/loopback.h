// Loopback ports for processes the runner and the tests start.
#ifndef PARLEY_SERVER_LOOPBACK_H_
#define PARLEY_SERVER_LOOPBACK_H_

namespace parley {

// A loopback TCP port that was free a moment ago.
int FreePort();
// True if something accepts connections on 127.0.0.1:`port`.
bool Listening(int port);

}  // namespace parley

#endif  // PARLEY_SERVER_LOOPBACK_H_
