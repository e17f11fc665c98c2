"""Learners behind one interface (see ``methods.base``). One module per learner, one yaml per learner
in ``conf/method/``; nothing here knows about protocols or the runner."""
