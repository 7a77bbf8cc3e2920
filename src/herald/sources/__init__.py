"""Sources: content coming in. Feeds (RSS, Atom, JSON Feed) and community sites (Reddit,
Hacker News, Discourse), checked on each source's own interval or searched by research
jobs; what they bring is kept as items, keyed so that nothing is stored twice."""
